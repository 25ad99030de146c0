// The official `openai` client against sluice's /v1/chat/completions:
// one request, one streamed request, one error. Prints one JSON line with
// what it saw; tests/integration/chat.t checks it.
//   node chat.mjs BASE_URL ROUTE
import OpenAI from "openai";

const [baseURL, route] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.SLUICE_TOKEN || "sk-test-not-checked", maxRetries: 0, timeout: 10000 });
const out = {};

const r = await client.chat.completions.create({
  model: route,
  messages: [
    { role: "system", content: "You answer briefly." },
    { role: "user", content: "Say hello to the support team." },
  ],
  max_tokens: 64,
});
out.plain = {
  object: r.object,
  model: r.model,
  content: r.choices[0].message.content,
  finish: r.choices[0].finish_reason,
  usage: r.usage,
};

const stream = await client.chat.completions.create({
  model: route,
  messages: [{ role: "user", content: "Stream a greeting, please." }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let chunks = 0;
let finish = null;
let usage = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.choices.length) {
    text += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  if (chunk.usage) usage = chunk.usage;
}
out.stream = { text, chunks, finish, usage };

try {
  await client.chat.completions.create({ model: "no-such-route", messages: [{ role: "user", content: "x" }] });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, code: e.code, message: e.message };
}
const models = await client.models.list();
out.models = models.data.map((m) => m.id);
console.log(JSON.stringify(out));
