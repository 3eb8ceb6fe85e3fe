"""``postroom send`` (flags, a ``.eml``, or a CSV/JSONL batch), ``messages ls|show``, ``tail`` and ``inbox ls|read``.

A batch sends one request per row with an ``Idempotency-Key`` made of the file's hash and the row number: running the
same file again after an interruption answers the rows already accepted with their first answer instead of sending
them twice (for as long as the API keeps idempotency records).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from postroom.cli.api_session import ApiClient, ApiError, ApiUnreachableError, JsonFlag, api
from postroom.cli.arguments import parse_duration, parse_vars
from postroom.cli.terminal import Exit, Out, exit_for, plain, reporting, styled, table

MESSAGE_FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "template", "tags", "topic", "send_at"}
)
_LIST_FIELDS = frozenset({"to", "cc", "bcc", "reply_to", "tags"})
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def register(app: typer.Typer) -> None:
    messages_app = typer.Typer(help="Messages sent through this tenant: list them, show one's timeline.")
    inbox_app = typer.Typer(help="Read received mail (inbound addresses).")
    app.command()(send)
    app.command()(tail)
    messages_app.command("ls")(messages_ls)
    messages_app.command("show")(messages_show)
    inbox_app.command("ls")(inbox_ls)
    inbox_app.command("read")(inbox_read)
    app.add_typer(messages_app, name="messages", no_args_is_help=True)
    app.add_typer(inbox_app, name="inbox", no_args_is_help=True)


# --- send -----------------------------------------------------------------------------------------------------------


def send(
    ctx: typer.Context,
    sender: Annotated[str | None, typer.Option("--from", help="Sender, e.g. 'Shop <orders@shop.example>'.")] = None,
    to: Annotated[list[str] | None, typer.Option(help="Recipient (repeatable).")] = None,
    cc: Annotated[list[str] | None, typer.Option(help="Cc recipient (repeatable).")] = None,
    bcc: Annotated[list[str] | None, typer.Option(help="Bcc recipient (repeatable).")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject (a template may give it).")] = None,
    text: Annotated[str | None, typer.Option(help="Plain-text body.")] = None,
    html: Annotated[str | None, typer.Option(help="HTML body.")] = None,
    template: Annotated[str | None, typer.Option(help="A stored template to render.")] = None,
    var: Annotated[list[str] | None, typer.Option(help="A template variable, k=v (repeatable; v may be JSON).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    eml: Annotated[
        Path | None, typer.Option(help="Send this RFC 5322 file as it is (--to overrides recipients).")
    ] = None,
    batch: Annotated[
        Path | None, typer.Option(help="One message per row of a .csv or .jsonl file; flags give the defaults.")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Send nothing: show the path, MX/TLS, DKIM, suppression and refusals.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Send a message (flags, --eml or --template with --var), or a batch from CSV/JSONL with per-row results."""
    out = Out(json_out)
    defaults: dict[str, Any] = {
        "from": sender,
        "to": to,
        "cc": cc,
        "bcc": bcc,
        "subject": subject,
        "text": text,
        "html": html,
        "template": template,
        "tags": tag,
    }
    defaults = {k: v for k, v in defaults.items() if v}
    try:
        variables = parse_vars(var or [])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--var") from None
    if variables:
        defaults["variables"] = variables
    if explain:
        if batch is not None or eml is not None:
            raise typer.BadParameter("--explain takes a message given by flags or --template", param_hint="--explain")
        with reporting(out):
            explained = api(ctx).call("POST", "/v1/messages/explain", defaults)
        out.emit(explained, _render_explanation(explained))
        # Like `domains verify`, a script can branch on the answer: 0 would send, 1 would be refused.
        raise SystemExit(int(Exit.OK if explained.get("would_send") else Exit.REFUSED))
    if batch is not None:
        raise SystemExit(int(_send_batch(ctx, out, batch, defaults)))
    with reporting(out):
        client = api(ctx)
        if eml is not None:
            query = {"rcpt": to} if to else None
            # Files saved by mail clients and editors end lines with LF; the API takes RFC 5322's CRLF only (bare LF
            # is how SMTP smuggling starts), so the file's lines are given CRLF here, as sendmail does for local mail.
            raw = eml.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            sent = client.call("POST", "/v1/messages/raw", raw=raw, content_type="message/rfc822", query=query)
        else:
            sent = client.call("POST", "/v1/messages", defaults)
    out.emit(sent, lambda c: c.print(f"accepted [bold]{plain(sent['id'])}[/bold] ({styled(sent.get('status'))})"))


def _render_explanation(explained: dict[str, Any]) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        verdict = "[green]would send[/green]" if explained.get("would_send") else "[red]would be refused[/red]"
        path = explained.get("path") or {}
        console.print(f"{verdict}  path [bold]{plain(path.get('path'))}[/bold] ({plain(path.get('why'))})")
        grid = table("recipient", "outcome", "suppression")
        for row in explained.get("recipients", []):
            suppression = row.get("suppression") or {}
            grid.add_row(plain(row["address"]), plain(row["outcome"]), plain(suppression.get("reason") or ""))
        console.print(grid)
        for domain in explained.get("domains", []):
            hosts = ", ".join(str(host.get("host")) for host in domain.get("mx", [])) or "no MX"
            tls = (domain.get("tls") or {}).get("policy") or "-"
            problem = f"  [yellow]{plain(domain['problem'])}[/yellow]" if domain.get("problem") else ""
            console.print(f"  {plain(domain.get('domain'))}: MX {plain(hosts)}; TLS {plain(tls)}{problem}")
        for refusal in explained.get("refusals", []):
            console.print(
                f"[red]✗[/red] {plain(refusal.get('status'))} {plain(refusal.get('code'))}: "
                f"{plain(refusal.get('message'))}"
            )

    return render


def _rows(path: Path) -> list[dict[str, Any]]:
    data = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows: list[dict[str, Any]] = []
        for raw in csv.DictReader(io.StringIO(data)):
            row: dict[str, Any] = {}
            variables: dict[str, Any] = {}
            for column, value in raw.items():
                if column is None or value in (None, ""):
                    continue
                name = column.strip()
                if name in _LIST_FIELDS:
                    row[name] = [part.strip() for part in str(value).split(",") if part.strip()]
                elif name in MESSAGE_FIELDS:
                    row[name] = value
                else:  # every other column is a template variable: a CSV of customers and their order numbers
                    variables[name] = value
            if variables:
                row["variables"] = variables
            rows.append(row)
        return rows
    rows = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise typer.BadParameter(f"line {number} is not JSON: {error}", param_hint="--batch") from None
        if not isinstance(value, dict):
            raise typer.BadParameter(f"line {number} is not a JSON object", param_hint="--batch")
        rows.append(value)
    return rows


def _merged(defaults: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    variables = {**defaults.get("variables", {}), **row.get("variables", {})}
    merged = {**defaults, **row}
    if variables:
        merged["variables"] = variables
    return merged


def _send_batch(ctx: typer.Context, out: Out, path: Path, defaults: dict[str, Any]) -> Exit:
    if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise typer.BadParameter("give a .csv or .jsonl file", param_hint="--batch")
    rows = _rows(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    results: list[dict[str, Any]] = []
    with reporting(out):
        client = api(ctx)
        progress = Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=out.errors,
            disable=out.json_mode or not out.errors.is_terminal,
            transient=False,
        )
        with progress:
            task = progress.add_task("send", total=len(rows))
            for number, row in enumerate(rows, start=1):
                result = _send_row(client, number, _merged(defaults, row), f"batch-{digest}-{number}")
                results.append(result)
                progress.advance(task)
                if result["http_status"] == 0:
                    # The API is unreachable: the rows left are not tried (each would wait out its timeout); the
                    # same command later resends nothing already accepted (the Idempotency-Key per row).
                    results.extend(_skipped(n) for n in range(number + 1, len(rows) + 1))
                    break
    failed = [r for r in results if r["status"] == "failed"]
    summary = {"results": results, "accepted": len(results) - len(failed), "failed": len(failed)}

    def render(console: Console) -> None:
        grid = table("row", "result", "id / error")
        for result in results:
            detail = result.get("id") or f"{result['error']['message']} ({result['error'].get('field') or '-'})"
            grid.add_row(str(result["row"]), styled("accepted" if result["status"] == "accepted" else "failed"),
                         plain(detail))  # fmt: skip
        console.print(grid)
        console.print(f"{summary['accepted']} accepted, {summary['failed']} failed")

    out.emit(summary, render)
    if failed:
        unreachable = any(r["http_status"] == 0 or exit_for(r["http_status"]) is Exit.UNAVAILABLE for r in failed)
        return Exit.UNAVAILABLE if unreachable else Exit.REFUSED
    return Exit.OK


def _send_row(client: ApiClient, number: int, message: dict[str, Any], key: str) -> dict[str, Any]:
    try:
        sent = client.call("POST", "/v1/messages", message, headers={"Idempotency-Key": key})
    except ApiError as error:
        return {"row": number, "status": "failed", "http_status": error.status, "error": error.body["error"]}
    except ApiUnreachableError as error:
        failure = {"code": "unreachable", "message": str(error), "field": None}
        return {"row": number, "status": "failed", "http_status": 0, "error": failure}
    return {"row": number, "status": "accepted", "http_status": 202, "id": sent.get("id")}


def _skipped(number: int) -> dict[str, Any]:
    failure = {"code": "not_sent", "message": "not tried: the API was unreachable", "field": None}
    return {"row": number, "status": "failed", "http_status": 0, "error": failure}


# --- messages -------------------------------------------------------------------------------------------------------


def messages_ls(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this status (queued, delivered, bounced, …).")] = None,
    to: Annotated[str | None, typer.Option(help="A recipient address, exactly.")] = None,
    sender: Annotated[str | None, typer.Option("--from", help="The From address, exactly.")] = None,
    tag: Annotated[str | None, typer.Option(help="One of the message's tags.")] = None,
    search: Annotated[str | None, typer.Option("--search", "-q", help="Text in the subject or a recipient.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 25,
    json_out: JsonFlag = False,
) -> None:
    """Messages, newest first."""
    out = Out(json_out)
    query = {"status": status, "recipient": to, "sender": sender, "tag": tag, "q": search, "limit": limit}
    with reporting(out):
        page = api(ctx).call("GET", "/v1/messages", query=query)

    def render(console: Console) -> None:
        grid = table("id", "created", "status", "from", "to", "subject")
        for message in page["data"]:
            grid.add_row(
                plain(message["id"]),
                plain(_short_time(message.get("created_at"))),
                styled(message["status"]),
                plain(message.get("from_address")),
                plain(", ".join(message.get("to", []))),
                plain(message.get("subject")),
            )
        console.print(grid)
        if page.get("next"):
            console.print("[dim]more: narrow with --status/--to/--search or raise --limit[/dim]")

    out.emit(page, render)


def messages_show(ctx: typer.Context, message_id: str, json_out: JsonFlag = False) -> None:
    """One message: its recipients and a readable timeline of its events."""
    out = Out(json_out)
    with reporting(out):
        client = api(ctx)
        message = client.call("GET", f"/v1/messages/{message_id}")
        events = client.call("GET", f"/v1/messages/{message_id}/events")

    def render(console: Console) -> None:
        console.print(f"[bold]{plain(message['id'])}[/bold]  {styled(message['status'])}")
        console.print(f"from     {plain(message.get('from_address'))}")
        console.print(f"subject  {plain(message.get('subject'))}")
        console.print(f"created  {plain(message.get('created_at'))}   delivery {plain(message.get('delivery'))}")
        if message.get("reason"):
            console.print(f"reason   [red]{plain(message['reason'])}[/red]")
        recipients = table("recipient", "status", "reply")
        for recipient in message.get("recipients", []):
            recipients.add_row(
                plain(recipient.get("address")), styled(recipient.get("status")), plain(recipient.get("reply") or "")
            )
        console.print(recipients)
        console.print("[bold]timeline[/bold]")
        console.print(f"  {plain(_short_time(message.get('created_at')))}  accepted")
        for event in events.get("data", []):
            console.print("  " + _event_line(event, with_message=False))

    out.emit({"message": message, "events": events.get("data", [])}, render)


def _event_line(event: dict[str, Any], *, with_message: bool = True) -> str:
    details = event.get("details") or {}
    said = details.get("reply") or details.get("diagnostic") or details.get("reason") or details.get("url") or ""
    parts = [
        plain(_short_time(event.get("occurred_at"))),
        styled(event.get("type")),
        plain(event.get("recipient") or ""),
        f"[dim]{plain(event.get('message_id')) + ' ' if with_message else ''}via {plain(event.get('source'))}[/dim]",
    ]
    if said:
        parts.append(f"[dim]{plain(str(said)[:160])}[/dim]")
    return "  ".join(part for part in parts if part)


def _short_time(value: Any) -> str:
    text = str(value or "")
    return text.replace("T", " ")[:19] if text else ""


# --- tail -----------------------------------------------------------------------------------------------------------


def cursor_at(moment: datetime) -> str:
    """An event cursor just before ``moment``: an id with that time and no random part (ids sort by time)."""
    value = int(moment.timestamp() * 1000) << 80
    return "evt_" + "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def tail(
    ctx: typer.Context,
    event_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only these event types (repeatable): delivered, bounced, …")
    ] = None,
    message: Annotated[str | None, typer.Option(help="Only this message's events.")] = None,
    recipient: Annotated[str | None, typer.Option(help="Only events about this recipient.")] = None,
    since: Annotated[str | None, typer.Option(help="Start this long ago (e.g. 10m, 2h) instead of now.")] = None,
    from_start: Annotated[bool, typer.Option(help="Start at the oldest event kept.")] = False,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many matching events.")] = None,
    timeout: Annotated[float | None, typer.Option(min=0, help="Stop after this many seconds.")] = None,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between polls when caught up.")] = 1.0,
    json_out: JsonFlag = False,
) -> None:
    """Follow events live (like `kubectl logs -f`); --json prints one JSON object per line. Ctrl-C stops."""
    out = Out(json_out)
    wanted = {t.strip() for value in event_type or [] for t in value.split(",") if t.strip()}
    after: str | None = None
    if not from_start:
        start = datetime.now(UTC) - (parse_duration(since) if since else parse_duration("0s"))
        after = cursor_at(start)
    deadline = time.monotonic() + timeout if timeout is not None else None
    shown = 0
    with reporting(out):
        client = api(ctx)
        try:
            for event in _follow(client, after, interval, deadline):
                if wanted and event.get("type") not in wanted:
                    continue
                if message and event.get("message_id") != message:
                    continue
                if recipient and (event.get("recipient") or "").lower() != recipient.lower():
                    continue
                out.emit(event, _event_printer(event))
                shown += 1
                if count is not None and shown >= count:
                    return
        except KeyboardInterrupt:
            return


def _event_printer(event: dict[str, Any]) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        console.print(_event_line(event), soft_wrap=True)

    return render


def _follow(client: ApiClient, after: str | None, interval: float, deadline: float | None) -> Iterator[dict[str, Any]]:
    while deadline is None or time.monotonic() < deadline:
        page = client.call("GET", "/v1/events", query={"after": after, "limit": 500})
        yield from page.get("data", [])
        after = page.get("next") or after
        if not page.get("has_more"):
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)


# --- inbox ----------------------------------------------------------------------------------------------------------


def inbox_ls(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="An inbound address, e.g. support@shop.example.")],
    mailbox: Annotated[str, typer.Option(help="inbox, archive, trash or a custom mailbox's key.")] = "inbox",
    unread: Annotated[bool, typer.Option(help="Only unread messages.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    json_out: JsonFlag = False,
) -> None:
    """Messages in an address's mailbox, newest first."""
    out = Out(json_out)
    query: dict[str, Any] = {"limit": limit, "unread": "true" if unread else None}
    with reporting(out):
        page = api(ctx).call("GET", f"/v1/mailboxes/{address}:{mailbox}/messages", query=query)

    def render(console: Console) -> None:
        grid = table("id", "received", "from", "subject", "")
        for item in page.get("messages", []):
            unseen = "$seen" not in (item.get("keywords") or [])
            grid.add_row(
                plain(item["id"]),
                plain(_short_time(item.get("received_at"))),
                plain(_addresses(item.get("from"))),
                ("[bold]" if unseen else "") + plain(item.get("subject")) + ("[/bold]" if unseen else ""),
                "📎" if item.get("has_attachments") else "",
            )
        console.print(grid)

    out.emit(page, render)


def inbox_read(ctx: typer.Context, mail_id: str, json_out: JsonFlag = False) -> None:
    """One received message: headers, text body, attachments."""
    out = Out(json_out)
    with reporting(out):
        mail = api(ctx).call("GET", f"/v1/mail/{mail_id}")

    def render(console: Console) -> None:
        console.print(f"[bold]{plain(mail.get('subject'))}[/bold]")
        console.print(f"from  {plain(_addresses(mail.get('from')))}")
        console.print(f"to    {plain(_addresses(mail.get('to')))}")
        console.print(f"date  {plain(mail.get('date') or mail.get('received_at'))}")
        console.rule()
        console.print(plain(mail.get("text") or mail.get("preview") or "(no text part)"))
        for attachment in mail.get("attachments", []):
            console.print(f"📎 {plain(attachment.get('filename'))} ({plain(attachment.get('size'))} bytes)")

    out.emit(mail, render)


def _addresses(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_addresses(v) for v in value)
    if isinstance(value, dict):
        name, address = value.get("name"), value.get("address") or value.get("email")
        return f"{name} <{address}>" if name else str(address or "")
    return str(value or "")
