// Drives Node's official `resend` client against a Postroom API given by POSTROOM_URL (its root, plain HTTP) and
// POSTROOM_TOKEN; prints one JSON line per call: {ok, answer} or {ok: false, error: {name, statusCode, message}}.
// The SDK never throws on an API error: it returns {data, error}. tests/dialects/test_resend_node_sdk.py runs it.
import { readFileSync } from "node:fs";
import { Resend } from "resend";

const [url, token] = [process.env.POSTROOM_URL, process.env.POSTROOM_TOKEN];
const calls = JSON.parse(readFileSync(0, "utf8")); // [{token?, method: "emails.send" | ..., args: [...]}]

for (const call of calls) {
  // baseUrl is the SDK's documented option for another API host (RESEND_BASE_URL in the environment works too).
  const client = new Resend(call.token ?? token, { baseUrl: url });
  const [group, method] = call.method.split(".");
  const args = call.args.map((arg) => (call.method === "emails.send" ? withBuffers(arg) : arg));
  const { data, error } = await client[group][method](...args);
  console.log(JSON.stringify(error ? { ok: false, error } : { ok: true, answer: data }));
}

// Attachments as Node apps pass them, as Buffers: the SDK sends them base64-encoded.
function withBuffers(email) {
  if (!email.attachments) return email;
  return {
    ...email,
    attachments: email.attachments.map((a) => ({ ...a, content: Buffer.from(a.content, "base64") })),
  };
}
