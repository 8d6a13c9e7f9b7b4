// Drives the gateway's web chat page (GET /) in jsdom, its script talking to the live gateway through Node's
// fetch: two turns with one function (the second sends the first as history), a stream stopped part way, an
// error shown, a temperature that is not a number refused before anything is sent, a key a header cannot carry
// refused, and two streams made up here (CRLF-framed lines split across reads; a stream cut before [DONE]).
// Usage: node chat_page_client.mjs BASE_URL SHORT_FUNCTION LONG_FUNCTION. Prints a JSON summary; exits 1 with the
// reason on the first failed check.
import { createRequire } from "node:module";

// jsdom comes from NODE_PATH (.cache/node/node_modules), which only require() consults.
const { JSDOM } = createRequire(import.meta.url)("jsdom");

const [base, shortFunction, longFunction] = process.argv.slice(2);

function fail(message) {
  console.error("FAIL: " + message);
  process.exit(1);
}

async function waitFor(what, predicate, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = predicate();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  fail("timed out waiting for " + what);
}

const page = await fetch(base + "/");
if (page.status !== 200) fail("GET / answered " + page.status);
if (!page.headers.get("content-type").startsWith("text/html")) fail("GET / is not HTML");
const requests = [];  // the chat requests the page sent

// A made-up stream of `pieces` (strings, each one read) for the message SYNTHETIC:<name>.
const synthetic = {
  "SYNTHETIC:crlf": ['data: {"choices":[{"delta":{"content":"A"}}]}\r', '\n\r\ndata: {"choices":[{"delta":',
                     '{"content":"B"},"finish_reason":"stop"}]}\r\n\r', "\n", "data: [DONE]\r\n\r\n"],
  "SYNTHETIC:cut": ['data: {"choices":[{"delta":{"content":"half"}}]}\n\n'],
};
function syntheticResponse(pieces) {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
}
const dom = new JSDOM(await page.text(), {
  url: base + "/",
  runScripts: "dangerously",
  pretendToBeVisual: true,
  beforeParse(window) {
    window.fetch = (url, options = {}) => {
      if (options.body) {
        const request = JSON.parse(options.body);
        const pieces = synthetic[request.messages.at(-1).content];
        if (pieces) return Promise.resolve(syntheticResponse(pieces));
        requests.push(request);
      }
      return fetch(new URL(url, base), options);
    };
    window.AbortController = AbortController;  // Node's fetch takes its own signals
    window.TextDecoder = TextDecoder;
  },
});
const document = dom.window.document;
const byId = (id) => document.getElementById(id);
const all = (selector) => [...document.querySelectorAll(selector)];

// The functions come from /v1/models.
await waitFor("the function list", () => byId("function").options.length >= 2);
const functions = [...byId("function").options].map((option) => option.value);
if (!functions.includes(shortFunction) || !functions.includes(longFunction)) fail("functions: " + functions);

async function say(text, statsCount) {
  byId("input").value = text;
  byId("composer").requestSubmit();
  await waitFor(`turn "${text}" to end`, () => all(".stats").length >= statsCount);
}

// Two turns: the answers stream in, the second request carries the first turn.
byId("function").value = shortFunction;
await say("你好", 1);
await say("again", 2);
const answers = all(".assistant").map((node) => node.textContent);
if (answers.length !== 2 || !answers.every((text) => text.startsWith("t0 t1 "))) fail("answers: " + answers);
const stats = all(".stats").map((node) => node.textContent);
if (!stats[0].includes("finish: length") || !stats[0].includes("completion tokens")) fail("stats: " + stats[0]);
const second = requests.at(-1);
if (second.model !== shortFunction || !second.stream || second.messages.length !== 3 ||
    second.messages[1].role !== "assistant" || second.messages[1].content !== answers[0]) {
  fail("second request: " + JSON.stringify(second));
}

// A long answer stopped part way: the page says so and can send again.
byId("function").value = longFunction;
byId("input").value = "a long one";
byId("composer").requestSubmit();
await waitFor("the long answer to start", () => all(".assistant").at(-1).textContent.includes("t2 "));
if (byId("stop").disabled) fail("stop is disabled while streaming");
byId("stop").click();
await waitFor("the stop", () => all(".stats").at(-1).textContent === "stopped: left out of the conversation");
const stopped = all(".assistant").at(-1).textContent;
if (byId("send").disabled || stopped.includes("t399 ")) fail("after stop: " + stopped.length + " characters");
if (!all(".assistant").at(-1).classList.contains("dropped")) fail("the stopped turn is not marked left out");

// An error is shown as the gateway's message.
const unknown = document.createElement("option");
unknown.value = unknown.textContent = "no_such_function";
byId("function").appendChild(unknown);
byId("function").value = "no_such_function";
byId("input").value = "hello?";
byId("composer").requestSubmit();
const error = await waitFor("the error", () => all(".error").at(-1));
if (!error.textContent.startsWith("404: The model `no_such_function` does not exist")) {
  fail("error: " + error.textContent);
}

// A temperature that is not a number: said, nothing sent, the message kept in the box.
byId("function").value = shortFunction;
byId("temperature").value = "0.7x";
byId("input").value = "warm?";
const sentBefore = requests.length;
byId("composer").requestSubmit();
const badTemperature = await waitFor("the temperature error", () => all(".error").at(-1) !== error && all(".error").at(-1));
if (badTemperature.textContent !== 'Temperature: "0.7x" is not a number' || requests.length !== sentBefore ||
    byId("input").value !== "warm?") {
  fail("bad temperature: " + badTemperature.textContent + ", " + (requests.length - sentBefore) + " sent");
}
byId("temperature").value = " 0.25 ";
await say("warm", all(".stats").length + 1);
if (requests.at(-1).temperature !== 0.25) fail("temperature sent: " + requests.at(-1).temperature);

// Lines framed with CRLF, a CR and its LF in two reads: one answer "AB", finished.
await say("SYNTHETIC:crlf", all(".stats").length + 1);
if (all(".assistant").at(-1).textContent !== "AB" || !all(".stats").at(-1).textContent.includes("finish: stop")) {
  fail("CRLF stream: " + all(".assistant").at(-1).textContent + " / " + all(".stats").at(-1).textContent);
}
// A stream that ends without [DONE] is an error, and the turn is left out of the conversation.
const errorsBefore = all(".error").length;
byId("input").value = "SYNTHETIC:cut";
byId("composer").requestSubmit();
const cut = await waitFor("the cut stream's error", () => all(".error").length > errorsBefore && all(".error").at(-1));
if (!cut.textContent.includes("closed before the answer was complete") ||
    !all(".assistant").at(-1).classList.contains("dropped")) {
  fail("cut stream: " + cut.textContent);
}

// An API key a header cannot carry is said when typed, and not stored.
const errorsBeforeKey = all(".error").length;
byId("api-key").value = "ключ";
byId("api-key").dispatchEvent(new dom.window.Event("change"));
const keyError = await waitFor("the key's error", () => all(".error").length > errorsBeforeKey && all(".error").at(-1));
if (!keyError.textContent.startsWith("API key: only printable ASCII") ||
    dom.window.localStorage.getItem("doze-api-key")) {
  fail("non-ASCII key: " + keyError.textContent);
}
console.log(JSON.stringify({ functions, answers, stats, stopped_chars: stopped.length, error: error.textContent }));
dom.window.close();
