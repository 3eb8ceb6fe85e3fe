// Sends mail with nodemailer over Postroom's SMTP submission listener, as a Node app configured with SMTP settings
// would: STARTTLS required, AUTH with the API key as password. Reads {host, port, ca, user, pass, mail} as JSON on
// standard input; prints {ok, response, messageId, accepted} or {ok: false, error}.
// tests/dialects/test_nodemailer_submission.py runs it.
import { readFileSync } from "node:fs";
import nodemailer from "nodemailer";

const call = JSON.parse(readFileSync(0, "utf8"));
const transport = nodemailer.createTransport({
  host: call.host,
  port: call.port,
  secure: false,
  requireTLS: true,
  auth: { user: call.user, pass: call.pass },
  tls: { ca: [readFileSync(call.ca, "utf8")], servername: "localhost" },
});
const mail = {
  ...call.mail,
  attachments: (call.mail.attachments ?? []).map((a) => ({ ...a, content: Buffer.from(a.content, "base64") })),
};
try {
  const info = await transport.sendMail(mail);
  console.log(JSON.stringify({ ok: true, response: info.response, messageId: info.messageId, accepted: info.accepted }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: { code: error.code, responseCode: error.responseCode,
    message: error.message } }));
}
