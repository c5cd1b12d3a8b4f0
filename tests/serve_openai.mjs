// Drives a running `pinfer serve` with the official `openai` npm package (tests/test_serve_openai.c
// installs it and starts the server). Environment:
//   NPM_PREFIX          where `npm install --prefix` put the package
//   PINFER_URL          http://127.0.0.1:PORT/v1
//   PINFER_KEY          the server's --api-key
//   PINFER_MODEL        the server's --alias
//   EXPECT_COMPLETION, EXPECT_COMPLETION_PROMPT   `pinfer run -p 'Once upon a time' -n 20 --temp 0`:
//                       the generated text and the prompt's token count
//   EXPECT_CHAT, EXPECT_CHAT_PROMPT               `pinfer run --chat -p Hello -n 20 --temp 0`
// Prints one line per check; exits 1 on the first failure.
import { createRequire } from 'node:module';

const require = createRequire(process.env.NPM_PREFIX + '/');
const OpenAI = require('openai');
const env = process.env;
const client = new OpenAI({ baseURL: env.PINFER_URL, apiKey: env.PINFER_KEY, maxRetries: 0, timeout: 60000 });

function check(cond, what, detail) {
  if (!cond) {
    console.error(`FAIL: ${what}${detail !== undefined ? ': ' + JSON.stringify(detail) : ''}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

const N = 20;
const chatMsgs = [{ role: 'user', content: 'Hello' }];

// the model list
const models = await client.models.list();
const ids = [];
for await (const m of models) ids.push(m.id);
check(ids.length === 1 && ids[0] === env.PINFER_MODEL, 'models.list names the model', ids);

// a chat completion, greedy: pinfer run --chat's text
const chat = await client.chat.completions.create({ model: env.PINFER_MODEL, messages: chatMsgs, max_tokens: N, temperature: 0, seed: 1 });
check(chat.object === 'chat.completion' && chat.id.startsWith('chatcmpl-'), 'chat completion shape', chat);
check(chat.choices.length === 1 && chat.choices[0].message.role === 'assistant', 'one assistant choice', chat.choices);
check(chat.choices[0].message.content === env.EXPECT_CHAT, 'chat text equals pinfer run --chat', [chat.choices[0].message.content, env.EXPECT_CHAT]);
check(chat.choices[0].finish_reason === 'length', 'chat finish_reason length', chat.choices[0].finish_reason);
check(chat.usage.prompt_tokens === Number(env.EXPECT_CHAT_PROMPT) && chat.usage.completion_tokens === N &&
      chat.usage.total_tokens === chat.usage.prompt_tokens + N, 'chat usage', chat.usage);

// the same chat streamed: the same text, the prompt from the slot's KV cache
const stream = await client.chat.completions.create({ model: env.PINFER_MODEL, messages: chatMsgs, max_tokens: N, temperature: 0,
                                                      stream: true, stream_options: { include_usage: true } });
let text = '', finish = null, usage = null, chunks = 0, role = null;
for await (const chunk of stream) {
  chunks++;
  check(chunk.object === 'chat.completion.chunk', `chunk ${chunks} shape`, chunk);
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(role === 'assistant' && chunks > 3, 'stream: a role chunk, then content chunks', chunks);
check(text === env.EXPECT_CHAT, 'streamed text equals pinfer run --chat', [text, env.EXPECT_CHAT]);
check(finish === 'length', 'stream finish_reason length', finish);
check(usage && usage.completion_tokens === N && usage.prompt_tokens === Number(env.EXPECT_CHAT_PROMPT), 'stream usage', usage);
check(usage.prompt_tokens_details.cached_tokens === usage.prompt_tokens - 1,
      'the same prompt again: all but its last token reused from the slot', usage.prompt_tokens_details);

// the conversation goes on: the first turn comes from the cache, only the new part is decoded
const turn2 = await client.chat.completions.create({ model: env.PINFER_MODEL, max_tokens: 4, temperature: 0,
  messages: [...chatMsgs, { role: 'assistant', content: text }, { role: 'user', content: 'More' }] });
const u2 = turn2.usage;
check(u2.prompt_tokens_details.cached_tokens >= Number(env.EXPECT_CHAT_PROMPT) && u2.prompt_tokens > u2.prompt_tokens_details.cached_tokens,
      'second turn: the first turn reused from the cache', u2);

// a text completion, greedy: pinfer run's text
const cmpl = await client.completions.create({ model: env.PINFER_MODEL, prompt: 'Once upon a time', max_tokens: N, temperature: 0, seed: 1 });
check(cmpl.object === 'text_completion' && cmpl.choices.length === 1, 'completion shape', cmpl);
check(cmpl.choices[0].text === env.EXPECT_COMPLETION, 'completion text equals pinfer run', [cmpl.choices[0].text, env.EXPECT_COMPLETION]);
check(cmpl.choices[0].finish_reason === 'length', 'completion finish_reason length', cmpl.choices[0].finish_reason);
check(cmpl.usage.prompt_tokens === Number(env.EXPECT_COMPLETION_PROMPT) && cmpl.usage.completion_tokens === N, 'completion usage', cmpl.usage);

// a stop string cuts the text before it
const word = env.EXPECT_COMPLETION.split(/\s+/).slice(2).find((w) => w.length >= 4);
const cut = env.EXPECT_COMPLETION.slice(0, env.EXPECT_COMPLETION.indexOf(word));
const stopped = await client.completions.create({ model: env.PINFER_MODEL, prompt: 'Once upon a time', max_tokens: N, temperature: 0, stop: [word] });
check(stopped.choices[0].text === cut && stopped.choices[0].finish_reason === 'stop', `stop ["${word}"]`, [stopped.choices[0].text, cut]);
check(stopped.usage.completion_tokens < N, 'stop: fewer tokens', stopped.usage);

// a streamed completion
const cs = await client.completions.create({ model: env.PINFER_MODEL, prompt: 'Once upon a time', max_tokens: N, temperature: 0, stream: true });
let ctext = '', cfinish = null;
for await (const chunk of cs) for (const c of chunk.choices) { ctext += c.text; if (c.finish_reason) cfinish = c.finish_reason; }
check(ctext === env.EXPECT_COMPLETION && cfinish === 'length', 'streamed completion equals pinfer run', [ctext, cfinish]);

// errors as the package raises them
const bad = new OpenAI({ baseURL: env.PINFER_URL, apiKey: 'wrong', maxRetries: 0 });
try {
  await bad.chat.completions.create({ model: env.PINFER_MODEL, messages: chatMsgs, max_tokens: 2 });
  check(false, 'a wrong API key is refused');
} catch (e) {
  check(e instanceof OpenAI.AuthenticationError && e.status === 401 && e.error?.code === 'invalid_api_key', 'a wrong API key: AuthenticationError 401', [e.status, e.error]);
}
try {
  await client.completions.create({ model: env.PINFER_MODEL, prompt: 'a', n: 2 });
  check(false, 'n = 2 is refused');
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.status === 400 && /'n' must be 1/.test(e.message), 'n = 2: BadRequestError 400', [e.status, e.message]);
}
console.log('all checks passed');
