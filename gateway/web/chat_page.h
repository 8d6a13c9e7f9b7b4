// The gateway's web chat page (gateway/web/chat.html, compiled in): a conversation with one function,
// streamed from /v1/chat/completions, served at GET /.
#pragma once

#include <string_view>

namespace doze::gateway {

// The page's HTML, whole.
std::string_view ChatPageHtml();

}  // namespace doze::gateway
