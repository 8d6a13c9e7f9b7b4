// The official `openai` npm client against a running doze-gateway: a non-streaming and a streaming chat.
// Usage: node gateway_openai_client.mjs BASE_URL FUNCTION (NODE_PATH points at the openai package's folder).
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const OpenAI = require('openai');

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });

const completion = await client.chat.completions.create({
  model,
  messages: [{ role: 'user', content: '把这段产品描述改得更有吸引力：这款耳机音质不错' }],
  max_tokens: 4,
});
assert.equal(completion.object, 'chat.completion');
assert.equal(completion.choices.length, 1);
assert.equal(completion.choices[0].message.role, 'assistant');
assert.equal(typeof completion.choices[0].message.content, 'string');
assert.ok(completion.usage.prompt_tokens > 0);
assert.ok(completion.usage.completion_tokens > 0 && completion.usage.completion_tokens <= 4);

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: 'user', content: 'Q3 华东区销售额 286 万元' }],
  max_tokens: 4,
  stream: true,
  stream_options: { include_usage: true },
});
let text = '';
let finishReason = null;
let usage = null;
for await (const chunk of stream) {
  assert.equal(chunk.object, 'chat.completion.chunk');
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    text += choice.delta.content ?? '';
    finishReason = choice.finish_reason ?? finishReason;
  }
}
assert.ok(finishReason === 'stop' || finishReason === 'length', `finish_reason ${finishReason}`);
assert.ok(usage && usage.completion_tokens > 0, 'usage chunk');
console.log(JSON.stringify({ non_streaming: completion.choices[0].message.content, streaming: text }));
