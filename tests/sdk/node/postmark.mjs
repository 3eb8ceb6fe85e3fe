// Drives Node's official `postmark` client against a Postroom host given by POSTROOM_HOST (host:port, plain HTTP) and
// POSTROOM_TOKEN; prints one JSON line per call: {ok, answer} or {error: {name, code, statusCode, message}}.
// tests/dialects/test_postmark_node_sdk.py runs it and checks the mail in Postroom's API and the loopback MX.
import { readFileSync } from "node:fs";
import postmark from "postmark";

const [host, token] = [process.env.POSTROOM_HOST, process.env.POSTROOM_TOKEN];
const calls = JSON.parse(readFileSync(0, "utf8")); // [{token?, method: "sendEmail" | ..., args: [...]}]

for (const call of calls) {
  // requestHost is the SDK's documented option for another API host; it takes only a host, so no path prefix.
  const client = new postmark.ServerClient(call.token ?? token, { useHttps: false, requestHost: host, timeout: 20 });
  const args = call.args.map((arg) => call.method === "sendEmail" || call.method === "sendEmailWithTemplate"
    ? withModels(arg) : Array.isArray(arg) ? arg.map(withModels) : arg);
  try {
    console.log(JSON.stringify({ ok: true, answer: await client[call.method](...args) }));
  } catch (error) {
    console.log(JSON.stringify({
      ok: false,
      error: { name: error.name, code: error.code, statusCode: error.statusCode, message: error.message },
    }));
  }
}

// Attachments built with the SDK's own model, as Node apps do: it sends ContentID: null on ordinary attachments.
function withModels(message) {
  if (!message.Attachments) return message;
  return {
    ...message,
    Attachments: message.Attachments.map(
      (a) => new postmark.Models.Attachment(a.Name, a.Content, a.ContentType, a.ContentID ?? null),
    ),
  };
}
