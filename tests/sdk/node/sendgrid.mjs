// Drives Node's official `@sendgrid/mail` against a Postroom API given by POSTROOM_URL (its root, plain HTTP) and
// POSTROOM_TOKEN; prints one JSON line per call: {ok, status, headers} or {ok: false, error: {name, code, body}}.
// tests/dialects/test_sendgrid_node_sdk.py runs it. {raw: body} sends a body as it is through the same client (the
// Mail helper would reject or reshape a malformed address before sending).
import { readFileSync } from "node:fs";
import sgMail from "@sendgrid/mail";

const [url, token] = [process.env.POSTROOM_URL, process.env.POSTROOM_TOKEN];
const calls = JSON.parse(readFileSync(0, "utf8")); // [{token?, mail?, raw?}]

for (const call of calls) {
  sgMail.setApiKey(call.token ?? token);
  // setApiKey resets the base URL to SendGrid's, so Postroom's is set after it.
  sgMail.client.setDefaultRequest("baseUrl", url);
  try {
    const [response] = call.raw
      ? await sgMail.client.request({ method: "POST", url: "/v3/mail/send", body: call.raw })
      : await sgMail.send(call.mail);
    console.log(JSON.stringify({ ok: true, status: response.statusCode, headers: response.headers }));
  } catch (error) {
    console.log(JSON.stringify({
      ok: false,
      error: { name: error.constructor.name, code: error.code, body: error.response?.body ?? null, message: error.message },
    }));
  }
}

