"""The ``postroom`` commands that talk to the API (never to the table): login, whoami, domains, keys, stores and
addresses here; send, messages, tail and inbox in :mod:`postroom.cli.mail_commands`.

Typer builds the commands from type hints (one source for parsing, ``--help`` and shell completion, which Click
provides for bash, zsh, fish and PowerShell); Rich draws the tables, colours and progress bars. Both are maintained,
widely used, and already what most Python CLIs a user meets are made of (README, "The CLI").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from postroom.cli import mail_commands
from postroom.cli.api_session import ApiClient, Connection, JsonFlag, api, resolve_target, save_profile
from postroom.cli.arguments import parse_duration, split_values
from postroom.cli.terminal import Exit, Out, plain, reporting, styled, table

app = typer.Typer(
    name="postroom",
    help="Postroom: transactional email relay for AWS. Commands talk to the API at POSTROOM_URL with POSTROOM_KEY "
    "(or a profile saved by `postroom login`).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,  # a traceback with locals could print the API key
)
domains_app = typer.Typer(help="Sending domains: add one, publish its records, verify it.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys: create, list, disable, rotate. (With --table: the old table-writing commands.)",
    no_args_is_help=True,
)
stores_app = typer.Typer(help="Shops whose order webhooks Postroom receives.", no_args_is_help=True)
addresses_app = typer.Typer(help="Inbound addresses (each with Inbox, Archive and Trash).", no_args_is_help=True)
app.add_typer(domains_app, name="domains")
app.add_typer(keys_app, name="keys")
app.add_typer(stores_app, name="stores")
app.add_typer(addresses_app, name="addresses")


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="API URL (default: $POSTROOM_URL, then the profile).")] = None,
    key: Annotated[str | None, typer.Option(help="API key (default: $POSTROOM_KEY, then the profile).")] = None,
    profile: Annotated[
        str | None, typer.Option(help="Profile in ~/.config/postroom/profiles.toml (default: $POSTROOM_PROFILE).")
    ] = None,
) -> None:
    ctx.obj = Connection(url, key, profile)


# --- login / whoami -------------------------------------------------------------------------------------------------


@app.command()
def login(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(prompt=True, help="The stack's ApiUrl output (or the local stack's API).")],
    key: Annotated[str, typer.Option(prompt=True, hide_input=True, help="An API key.")],
    profile: Annotated[str, typer.Option(help="Profile name to save under.")] = "default",
    json_out: JsonFlag = False,
) -> None:
    """Check a URL and key against the API, then save them as a profile (file mode 0600)."""
    out = Out(json_out)
    with reporting(out):
        me = ApiClient(resolve_target(url, key, None)).call("GET", "/v1/me")
        path = save_profile(profile, url.rstrip("/"), key)
    out.emit(
        {**me, "profile": profile, "path": str(path)},
        lambda c: c.print(f"saved profile [bold]{plain(profile)}[/bold] in {plain(path)}: key {plain(me['key_id'])}"),
    )


@app.command()
def whoami(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """The key in use: its id, tenant and scopes."""
    out = Out(json_out)
    with reporting(out):
        client = api(ctx)
        me = client.call("GET", "/v1/me")
    out.emit(
        {**me, "url": client.target.url},
        lambda c: c.print(
            f"key {plain(me['key_id'])} (tenant {plain(me['tenant'])}) at {plain(client.target.url)}\n"
            f"scopes: {plain(', '.join(me.get('scopes', [])))}"
        ),
    )


# --- domains --------------------------------------------------------------------------------------------------------


def _render_domain(domain: dict[str, Any], *, problems: bool = True) -> Any:
    def render(console: Console) -> None:
        console.print(
            f"[bold]{plain(domain['name'])}[/bold]  {styled(domain['state'])}  delivery {plain(domain['delivery'])}"
            + (f"  SES {styled(domain['ses_status'])}" if domain.get("ses_status") else "")
        )
        grid = table("purpose", "type", "name", "value", "status")
        for record in domain.get("records", []):
            required = "" if record.get("required", True) else " (optional)"
            grid.add_row(
                plain(record["purpose"]) + required,
                plain(record["type"]),
                plain(record["name"]),
                plain(record["value"]),
                styled(record.get("status") or "to publish"),
            )
        console.print(grid)
        for problem in domain.get("problems", []) if problems else []:
            console.print(f"[red]✗[/red] {plain(problem)}")
        if domain["state"] == "verified":
            console.print("[green]✓ verified: mail may be sent from it[/green]")
        elif domain["state"] == "pending":
            console.print(f"publish the records above, then: postroom domains verify {plain(domain['name'])}")

    return render


@domains_app.command("ls")
def domains_ls(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """The sending domains: the stack's own (SendingDomains) and the ones added through the API, with their state."""
    out = Out(json_out)
    with reporting(out):
        listing = api(ctx).call("GET", "/v1/domains")

    def render(console: Console) -> None:
        grid = table("domain", "delivery", "source", "state")
        for row in listing.get("data", []):
            grid.add_row(plain(row["name"]), plain(row["delivery"]), plain(row["source"]), styled(row["state"]))
        console.print(grid)

    out.emit(listing, render)


@domains_app.command("add")
def domains_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The domain mail will be sent from.")],
    delivery: Annotated[str, typer.Option(help="ses, smtp, or auto (the stack's default path).")] = "auto",
    return_path: Annotated[str | None, typer.Option(help="Direct SMTP: the bounce domain.")] = None,
    mail_from: Annotated[str | None, typer.Option(help="SES: a custom MAIL FROM subdomain.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a sending domain and print the DNS records to publish."""
    out = Out(json_out)
    body = {"name": name, "delivery": delivery, "return_path": return_path, "mail_from": mail_from}
    with reporting(out):
        domain = api(ctx).call("POST", "/v1/domains", {k: v for k, v in body.items() if v is not None})
    out.emit(domain, _render_domain(domain, problems=False))  # a new domain misses everything: the table says it


@domains_app.command("show")
def domains_show(ctx: typer.Context, name: str, json_out: JsonFlag = False) -> None:
    """Each record of a domain as published, missing or wrong, and its state."""
    out = Out(json_out)
    with reporting(out):
        domain = api(ctx).call("GET", f"/v1/domains/{name}")
    out.emit(domain, _render_domain(domain))


@domains_app.command("verify")
def domains_verify(ctx: typer.Context, name: str, json_out: JsonFlag = False) -> None:
    """Check the domain's records now. Exit code 6 while it is not verified (so scripts can wait for DNS)."""
    out = Out(json_out)
    with reporting(out):
        domain = api(ctx).call("POST", f"/v1/domains/{name}/verify")
    out.emit(domain, _render_domain(domain))
    if domain.get("state") != "verified":
        raise SystemExit(int(Exit.NOT_VERIFIED))


@domains_app.command("publish-local")
def domains_publish_local(ctx: typer.Context, name: str, json_out: JsonFlag = False) -> None:
    """`postroom local` only: publish the domain's records on the local stack's DNS server, which plays your DNS
    provider there (on AWS, publish them at your real provider instead)."""
    out = Out(json_out)
    with reporting(out):
        zone_file = _local_zone_file()
        if zone_file is None:
            raise SystemExit(
                out.fail(
                    "no_local_dns",
                    "no sandboxed `postroom local` is running here (its .postroom/local.json names no DNS zone file)",
                    status=Exit.REFUSED,
                )
            )
        domain = api(ctx).call("GET", f"/v1/domains/{name}")
        records = publish_records(zone_file, domain.get("records", []))
    out.emit(
        {"domain": name, "zone_file": str(zone_file), "published": records},
        lambda c: c.print(f"published {len(records)} records of {plain(name)} on the local DNS server"),
    )


def _local_zone_file() -> Path | None:
    from postroom.local.stack import repo_root

    try:
        info_path = repo_root() / ".postroom" / "local.json"
    except FileNotFoundError:
        return None
    if not info_path.is_file():
        return None
    zone = json.loads(info_path.read_text()).get("dns_zone_file")
    return Path(zone) if zone else None


def publish_records(zone_file: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write the records into the JSON zone the local DNS server reads; names published again are replaced whole
    (as a provider's record set is), others are kept. Written to a new file then renamed: the server never reads a
    half-written zone."""
    zone: dict[str, dict[str, list[Any]]] = json.loads(zone_file.read_text()) if zone_file.is_file() else {}
    fresh: dict[str, dict[str, list[Any]]] = {}
    for record in records:
        value: Any = record["value"]
        if record["type"] == "MX":
            preference, host = str(value).split()
            value = [int(preference), host]
        fresh.setdefault(record["name"], {}).setdefault(record["type"], []).append(value)
    zone.update(fresh)
    zone_file.parent.mkdir(parents=True, exist_ok=True)
    partial = zone_file.with_suffix(".tmp")
    partial.write_text(json.dumps(zone, indent=2))
    partial.replace(zone_file)
    return records


@domains_app.command("rm")
def domains_rm(ctx: typer.Context, name: str, json_out: JsonFlag = False) -> None:
    """Retire a sending domain: nothing new is accepted from it."""
    out = Out(json_out)
    with reporting(out):
        domain = api(ctx).call("DELETE", f"/v1/domains/{name}")
    out.emit(domain, lambda c: c.print(f"{plain(name)}: {styled(domain.get('state', 'retired'))}"))


# --- keys -----------------------------------------------------------------------------------------------------------


def _render_keys(keys: list[dict[str, Any]]) -> Any:
    def render(console: Console) -> None:
        grid = table("id", "name", "state", "scopes", "limits", "expires")
        for key in keys:
            limits = ", ".join([*key.get("sending_domains", []), *key.get("mailboxes", [])]) or "-"
            grid.add_row(
                plain(key["id"]),
                plain(key["name"]),
                styled(key["state"]),
                plain(", ".join(sorted(key["scopes"]))),
                plain(limits),
                plain(key.get("expires_at") or "-"),
            )
        console.print(grid)

    return render


def _render_secret(key: dict[str, Any], what: str) -> Any:
    def render(console: Console) -> None:
        console.print(f"{what} key [bold]{plain(key['id'])}[/bold] ({plain(key['name'])}):")
        console.print(plain(key["key"]), soft_wrap=True)
        console.print("[yellow]store it now: it is never shown again[/yellow]")
        previous = key.get("previous")
        if previous:
            console.print(f"the old key {plain(previous['id'])} works until {plain(previous.get('expires_at'))}")

    return render


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'shop backend'.")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", "--scopes", help="A scope (repeat, or comma list).")
    ] = None,
    sending_domain: Annotated[list[str] | None, typer.Option(help="Only these From domains (repeatable).")] = None,
    mailbox: Annotated[list[str] | None, typer.Option(help="Mailboxes: a@d, *@d or * (repeatable).")] = None,
    expires_in: Annotated[str | None, typer.Option(help="The key stops working after this long, e.g. 30d.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create an API key for your tenant; the secret is printed once."""
    out = Out(json_out)
    body: dict[str, Any] = {
        "name": name,
        "scopes": split_values(scope) or ["messages:send", "messages:read"],
        "sending_domains": split_values(sending_domain),
        "mailboxes": split_values(mailbox),
    }
    if expires_in:
        body["expires_at"] = (datetime.now(UTC) + parse_duration(expires_in)).isoformat()
    with reporting(out):
        key = api(ctx).call("POST", "/v1/keys", body)
    out.emit(key, _render_secret(key, "new"))


@keys_app.command("list")
def keys_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Your tenant's API keys (never their secrets)."""
    out = Out(json_out)
    with reporting(out):
        keys = api(ctx).call("GET", "/v1/keys")
    out.emit(keys, _render_keys(keys["data"]))


@keys_app.command("disable")
def keys_disable(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's exact 12-character id (`postroom keys list`).")],
    json_out: JsonFlag = False,
) -> None:
    """Disable a key now."""
    out = Out(json_out)
    with reporting(out):
        key = api(ctx).call("POST", f"/v1/keys/{key_id}/disable")
    out.emit(key, _render_keys([key]))


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    key_id: str,
    grace: Annotated[str, typer.Option(help="How long the old key keeps working, e.g. 0s, 1h, 7d.")] = "24h",
    json_out: JsonFlag = False,
) -> None:
    """Replace a key; the old one works for the grace period."""
    out = Out(json_out)
    seconds = int(parse_duration(grace).total_seconds())
    with reporting(out):
        key = api(ctx).call("POST", f"/v1/keys/{key_id}/rotate", {"grace_seconds": seconds})
    out.emit(key, _render_secret(key, "replacement"))


# --- stores and addresses -------------------------------------------------------------------------------------------


@stores_app.command("add")
def stores_add(
    ctx: typer.Context,
    store_id: Annotated[str, typer.Argument(help="The {store} in the webhook URL: lower-case letters, digits, '-'.")],
    platform: Annotated[str, typer.Option(help="shopify or woocommerce.")],
    sender: Annotated[str, typer.Option("--from", help="From of the order mails: 'Shop <orders@shop.example>'.")],
    secret: Annotated[
        str, typer.Option(envvar="POSTROOM_STORE_SECRET", prompt=True, hide_input=True, help="Webhook secret.")
    ],
    shop_name: Annotated[str, typer.Option(help="The shop's name in the mails.")] = "",
    support_email: Annotated[str, typer.Option(help="Shown in the mails' footer.")] = "",
    locale: Annotated[str, typer.Option(help="e.g. de-DE: formats when an order names no locale.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Add or replace a store; prints the webhook URL to paste into the shop's admin."""
    out = Out(json_out)
    body = {
        "id": store_id,
        "platform": platform,
        "secret": secret,
        "sender": sender,
        "shop_name": shop_name,
        "support_email": support_email,
        "locale": locale,
    }
    with reporting(out):
        store = api(ctx).call("POST", "/v1/stores", body)
    out.emit(
        store,
        lambda c: c.print(
            f"store [bold]{plain(store['id'])}[/bold] ({plain(store['platform'])}) saved.\n"
            f"point its order webhooks at: [bold]{plain(store['webhook_url'])}[/bold]"
        ),
    )


@stores_app.command("list")
def stores_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Your tenant's stores and their webhook URLs."""
    out = Out(json_out)
    with reporting(out):
        stores = api(ctx).call("GET", "/v1/stores")

    def render(console: Console) -> None:
        grid = table("id", "platform", "from", "webhook URL")
        for store in stores["data"]:
            grid.add_row(
                plain(store["id"]), plain(store["platform"]), plain(store["sender"]), plain(store["webhook_url"])
            )
        console.print(grid)

    out.emit(stores, render)


@addresses_app.command("create")
def addresses_create(ctx: typer.Context, address: str, json_out: JsonFlag = False) -> None:
    """Register an inbound address (creates its Inbox, Archive and Trash)."""
    out = Out(json_out)
    with reporting(out):
        made = api(ctx).call("POST", "/v1/addresses", {"address": address})
    out.emit(
        made,
        lambda c: c.print(
            f"{plain(made['address'])}: mailboxes {plain(', '.join(m['name'] for m in made.get('mailboxes', [])))}"
        ),
    )


@addresses_app.command("list")
def addresses_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Inbound addresses this key can read."""
    out = Out(json_out)
    with reporting(out):
        found = api(ctx).call("GET", "/v1/addresses")

    def render(console: Console) -> None:
        for item in found.get("addresses", []):
            console.print(plain(item["address"]))

    out.emit(found, render)


mail_commands.register(app)

# The operator's commands (argparse, postroom.cli.table_commands) listed here too, so `postroom --help` and shell
# completion know them; main() hands them over before Typer parses anything, and so does each of these.
_OPERATOR_HELP = {
    "local": "Run the whole stack locally on loopback (no AWS account, no Docker).",
    "bridge": "Serve SMTP submission, IMAP and POP3 on this machine, over a Postroom API.",
    "doctor": "Check a sending domain's DNS (SPF, DKIM, DMARC, MTA-STS).",
    "dkim": "DKIM keys for direct SMTP delivery.",
    "submission-server": "Run the SMTP submission listeners (the optional AWS service's container).",
}


def _forwarder(name: str) -> Any:
    def forward(ctx: typer.Context) -> None:
        from postroom.cli.table_commands import main as table_main

        raise SystemExit(table_main([name, *ctx.args]))

    forward.__doc__ = _OPERATOR_HELP[name]
    return forward


for _name in _OPERATOR_HELP:
    app.command(
        _name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
        rich_help_panel="Operator commands (AWS credentials or local)",
    )(_forwarder(_name))
