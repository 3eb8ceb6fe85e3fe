"""The operator's ``postroom`` commands (argparse): run the local stack or the bridge, and the table-writing
``keys``/``stores``/``addresses`` commands, which need AWS credentials rather than an API key (the first admin key
of a fresh stack is made this way). :mod:`postroom.cli` hands these over; everything else talks to the API."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postroom.core.key_store import ApiKeyStore


def _cmd_local(args: argparse.Namespace) -> int:
    from pathlib import Path

    from postroom.local.durable import StateLockedError
    from postroom.local.stack import LocalStack, StackConfig, repo_root

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    config = StackConfig.from_env()
    if not args.ephemeral:
        config.state_dir = Path(args.state_dir) if args.state_dir else repo_root() / ".postroom" / "state"
    try:
        stack = LocalStack(config).start()
    except StateLockedError as error:
        print(f"postroom local: {error} (stop it, or give another --state-dir)", file=sys.stderr)
        return 2
    domains = stack.parameters.get("SendingDomains", "")
    sender = f"shop@{domains.split(',')[0].split('=')[0].strip()}" if domains else "shop@example.com"
    print(f"""
Postroom local stack is up.
  API             {stack.api_url}
  console         {stack.api_url}/console  (sign in with the API key)
  API key         {stack.api_key}
  AWS emulation   {stack.aws_endpoint}  (moto; resources created from template.yaml)
  sending domains {domains}
  default path    {stack.parameters.get("DefaultDelivery")}""")
    if stack.replayed is None:
        print("  state           in memory only (--ephemeral): a restart starts empty")
    else:
        print(
            f"  state           {config.state_dir} (kept across restarts; "
            f"{stack.replayed.records} records replayed in {stack.replayed.seconds:.1f} s)"
        )
    if stack.config.sandbox:
        print(
            f"  outbound SMTP   sandbox: every MX resolves to 127.0.0.1:{stack.sink.port}; mail lands in {stack.outbox}"
        )
    else:
        params = stack.parameters
        print(f"  outbound SMTP   MX via {params.get('DnsNameservers')}, port {params.get('SmtpPort')}")
    if stack.submission is not None:
        print(f"  SMTP submission 127.0.0.1:{stack.submission.port} (STARTTLS; user: anything, password: the API key)")
    if stack.bridge is not None:
        for name, port in stack.bridge.ports().items():
            if name == "smtp":
                continue  # the SMTP submission line above
            print(f"  {name.upper():<15} 127.0.0.1:{port} (user: an inbound address, password: the API key)")
    if stack.inbound is not None:
        listener = stack.inbound
        inbound = stack.parameters.get("InboundDomains", "").split(",")[0]
        catch_all = stack.parameters.get("InboundCatchAll") or "none"
        print(f"""  inbound domains {stack.parameters.get("InboundDomains")}  (catch-all: {catch_all})
  inbound SMTP    {listener.host}:{listener.port}  (plays SES receiving; mail is filed into mailboxes)
Receive a message and read the inbox:
  swaks --server {listener.host}:{listener.port} --to support@{inbound} --from ann@example.org
  curl -s '{stack.api_url}/v1/mailboxes/support@{inbound}:inbox/messages' -H 'Authorization: Bearer {stack.api_key}'""")
    print(
        f"""
Send a message:
  curl -s {stack.api_url}/v1/messages -H 'Authorization: Bearer {stack.api_key}' \\
    -H 'Content-Type: application/json' \\
    -d '{{"from": "Shop <{sender}>", "to": ["ann@example.org"], "subject": "Hello", "text": "It works."}}'
Then read its status:
  curl -s {stack.api_url}/v1/messages/<id> -H 'Authorization: Bearer {stack.api_key}'
Or with the CLI, in another terminal:
  export POSTROOM_URL={stack.api_url} POSTROOM_KEY={stack.api_key}
  postroom send --from 'Shop <{sender}>' --to ann@example.org --subject Hello --text 'It works.'
  postroom messages ls
Add a sending domain (the local DNS server plays your DNS provider):
  postroom domains add news.example --delivery smtp
  postroom domains publish-local news.example && postroom domains verify news.example
Receive a shop's order webhooks:
  postroom stores add my-shop --platform shopify --from 'Shop <{sender}>'   (asks for the webhook secret)
  → it prints the URL to point the shop's webhooks at: {stack.api_url}/v1/hooks/shopify/my-shop

Ctrl-C stops the stack.""",
        flush=True,
    )
    return _serve_until_stopped(stack.stop)


_BRIDGE_LISTENERS = (  # what `postroom bridge` prints for each listener it started
    ("smtp", "outgoing (SMTP)", "STARTTLS, password = your API key"),
    ("smtps", "outgoing (SMTPS)", "SSL/TLS, password = your API key"),
    ("imap", "incoming (IMAP)", "no encryption (loopback), user = the address"),
    ("pop3", "incoming (POP3)", "no encryption (loopback), user = the address"),
    ("imaps", "incoming (IMAPS)", "SSL/TLS, user = the address"),
    ("pop3s", "incoming (POP3S)", "SSL/TLS, user = the address"),
)


def _serve_until_stopped(stop: Callable[[], None]) -> int:
    """Block until Ctrl-C or SIGTERM, then ``stop`` what was started (the listeners run on their own threads)."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


def _cmd_bridge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from postroom.protocols.bridge.runner import Bridge, BridgeConfig

    if not args.api:
        print("postroom bridge: --api is required (the stack's ApiUrl output)", file=sys.stderr)
        return 2

    config = BridgeConfig(
        api_url=args.api,
        host=args.host,
        smtp_port=args.smtp_port or None,
        smtps_port=args.smtps_port or None,
        imap_port=args.imap_port or None,
        pop3_port=args.pop3_port or None,
        imaps_port=args.imaps_port or None,
        pop3s_port=args.pop3s_port or None,
        certificate=Path(args.cert) if args.cert else None,
        key=Path(args.key) if args.key else None,
        cache_bytes=max(0, args.cache_mb) * 1024 * 1024,
    )
    try:
        bridge = Bridge(config).start()
    except (ValueError, OSError) as error:
        print(f"postroom bridge: {error}", file=sys.stderr)
        return 2
    ports = bridge.ports()
    print(f"Postroom bridge → {args.api}")
    for name, label, how in _BRIDGE_LISTENERS:
        if name in ports:
            print(f"  {label:<16} {args.host}:{ports[name]}  {how}")
    print(f"  TLS certificate  {bridge.certificate} (self-signed unless --cert was given: trust it in your client)")
    print("Ctrl-C stops the bridge.", flush=True)
    return _serve_until_stopped(bridge.stop)


def _cmd_bridge_profile(args: argparse.Namespace) -> int:
    from pathlib import Path

    from postroom.protocols.bridge.setup_profile import AccountSettings, write_profile
    from postroom.protocols.tlscert import write_self_signed

    certificate = None
    if not args.no_certificate:
        # The bridge's own self-signed certificate (created now if the bridge has not run yet), or the one given.
        certificate = (
            Path(args.cert) if args.cert else write_self_signed(Path.home() / ".postroom" / "bridge" / "tls")[0]
        )
    settings = AccountSettings(
        address=args.address.lower(),
        host=args.host,
        imaps_port=args.imaps_port,
        smtps_port=args.smtps_port,
        certificate=certificate,
        display_name=args.name or "",
    )
    for path in write_profile(settings, Path(args.out)):
        print(path)
    return 0


def _cmd_submission_server(_: argparse.Namespace) -> int:
    from postroom.protocols.submission.submission_service import main

    return main(os.environ)


def _keys_store(table: str | None) -> ApiKeyStore:
    from postroom.core import aws
    from postroom.core.key_store import ApiKeyStore

    table = table or os.environ.get("POSTROOM_TABLE")
    if not table:
        raise SystemExit("give --table (the stack's TableName output) or set POSTROOM_TABLE")
    return ApiKeyStore(aws.client("dynamodb"), table)


def _cmd_keys_create(args: argparse.Namespace) -> int:
    from postroom.core.auth import parse_scopes

    try:
        scopes = parse_scopes(args.scopes)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    store = _keys_store(args.table)
    mailboxes = frozenset(m.strip().lower() for m in (args.mailboxes or "").split(",") if m.strip())
    _refuse_foreign_addresses(mailboxes, args.tenant, args.table)
    key = store.create(name=args.name, scopes=scopes, tenant=args.tenant, mailboxes=mailboxes)
    # The key is shown once; only its hash is stored.
    print(key)
    print(
        f"scopes: {', '.join(sorted(scopes))}; tenant: {args.tenant}. Store it now: it cannot be shown again.",
        file=sys.stderr,
    )
    return 0


def _refuse_foreign_addresses(mailboxes: frozenset[str], tenant: str, table: str | None) -> None:
    """A key reaches only its own tenant's addresses, so listing another tenant's address is a mistake to say."""
    from postroom.core import aws
    from postroom.mailbox.mailbox_store import MailboxStore

    store = MailboxStore(aws.client("dynamodb"), table or os.environ.get("POSTROOM_TABLE", ""))
    for address in sorted(m for m in mailboxes if not m.startswith("*")):
        owner = store.address_tenant(address)
        if owner is not None and owner != tenant:
            raise SystemExit(
                f"{address} is registered to tenant {owner!r}; a key of tenant {tenant!r} could never reach it "
                f"(give --tenant {owner} for a key to that address)"
            )


def _cmd_keys_disable(args: argparse.Namespace) -> int:
    from postroom.core.key_store import MIN_KEY_ID_PREFIX, KeyInfo

    store = _keys_store(args.table)
    # Resolve every id before disabling anything: one bad id refuses the whole command, so nothing is half done.
    targets: dict[str, KeyInfo] = {}
    for wanted in args.key_ids:
        found = store.matching(wanted)
        if not found:
            if len(wanted.strip()) < MIN_KEY_ID_PREFIX:
                raise SystemExit(
                    f"no key has the id {wanted!r}; give a whole key id or a prefix of at least "
                    f"{MIN_KEY_ID_PREFIX} characters"
                )
            raise SystemExit(f"no key has an id starting with {wanted!r}")
        if len(found) > 1:
            listed = ", ".join(sorted(k.key_id for k in found))
            raise SystemExit(f"{wanted!r} is ambiguous: it matches {len(found)} keys ({listed}); give more characters")
        targets[found[0].key_id] = found[0]
    if len(targets) > 1 and not args.yes:
        listed = "\n".join(f"  {k.key_id}  {k.name} (tenant {k.tenant})" for k in targets.values())
        raise SystemExit(f"this would disable {len(targets)} keys:\n{listed}\nrepeat with --yes to disable them")
    for info in targets.values():
        store.disable(info.key_id)
        print(f"disabled {info.key_id}  {info.name} (tenant {info.tenant})")
    return 0


def _cmd_stores_add(args: argparse.Namespace) -> int:
    from postroom.commerce.stores import STORE_ID, Platform, Store, StoreRegistry

    if not STORE_ID.match(args.store_id):
        raise SystemExit("a store id is 1-63 lower-case letters, digits and '-'")
    secret = args.secret or os.environ.get("POSTROOM_STORE_SECRET", "")
    if not secret:
        raise SystemExit("give the webhook secret with --secret or $POSTROOM_STORE_SECRET")
    import boto3

    endpoint = None
    table, prefix = args.table or os.environ.get("POSTROOM_TABLE"), args.secret_prefix
    if args.local:
        import json

        from postroom.local.stack import repo_root

        info_path = repo_root() / ".postroom" / "local.json"
        if not info_path.is_file():
            raise SystemExit(f"no running local stack ({info_path} is missing): start `postroom local` first")
        info = json.loads(info_path.read_text())
        endpoint, table, prefix = info["aws_endpoint"], info["table"], info["store_secret_prefix"]
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", info["region"])
    if not table or not prefix:
        raise SystemExit("give --table and --secret-prefix (the stack's TableName and StoreSecretPrefix outputs)")
    session = boto3.session.Session()
    registry = StoreRegistry(
        session.client("dynamodb", endpoint_url=endpoint),
        session.client("secretsmanager", endpoint_url=endpoint),
        table=table,
        secret_prefix=prefix,
    )
    store = Store(
        id=args.store_id,
        platform=Platform(args.platform),
        sender=args.sender,
        shop_name=args.shop_name or args.store_id,
        tenant=args.tenant,
        support_email=args.support_email,
        reminder_delay_minutes=args.reminder_delay,
        locale=args.locale,
    )
    registry.put(store, secret)
    print(f"store {store.id} ({store.platform.value}) saved; point its order webhooks at "
          f"<ApiUrl>/v1/hooks/{store.platform.value}/{store.id}")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postroom", description="Postroom: transactional email relay for AWS.")
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="run the whole stack locally on loopback (no AWS account, no Docker)")
    local.add_argument(
        "--state-dir",
        help="where accepted mail, records, mailboxes and events are kept across restarts (default: .postroom/state)",
    )
    local.add_argument(
        "--ephemeral", action="store_true", help="keep all state in memory: a restart starts empty (throwaway runs)"
    )
    local.set_defaults(func=_cmd_local)

    bridge = sub.add_parser("bridge", help="serve SMTP submission, IMAP and POP3 on this machine, over a Postroom API")
    bridge.add_argument("--api", help="the Postroom API URL (the stack's ApiUrl output); required to serve")
    bridge.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    bridge.add_argument("--smtp-port", type=int, default=2587, help="submission with STARTTLS (0: off)")
    bridge.add_argument("--smtps-port", type=int, default=2465, help="submission with implicit TLS (0: off)")
    bridge.add_argument("--imap-port", type=int, default=2143, help="IMAP4rev1, loopback only (0: off)")
    bridge.add_argument("--pop3-port", type=int, default=2110, help="POP3, loopback only (0: off)")
    bridge.add_argument("--imaps-port", type=int, default=2993, help="IMAP over SSL/TLS (0: off)")
    bridge.add_argument("--pop3s-port", type=int, default=2995, help="POP3 over SSL/TLS (0: off)")
    bridge.add_argument("--cert", help="TLS certificate (PEM); default: a self-signed one in ~/.postroom/bridge")
    bridge.add_argument("--key", help="TLS private key (PEM) for --cert")
    bridge.add_argument(
        "--cache-mb", type=int, default=512, help="received messages kept in ~/.postroom/bridge/mail (0: none)"
    )
    bridge.set_defaults(func=_cmd_bridge)
    bridge_sub = bridge.add_subparsers(dest="bridge_command")
    profile = bridge_sub.add_parser(
        "profile",
        help="write one-tap account setup: an Apple .mobileconfig, a Thunderbird config-v1.1.xml and Outlook settings",
    )
    profile.add_argument("--address", required=True, help="the mailbox address (also the user name)")
    profile.add_argument("--host", required=True, help="the name devices reach the bridge (or submission service) by")
    profile.add_argument("--imaps-port", type=int, default=2993, help="IMAP over SSL/TLS (default: the bridge's)")
    profile.add_argument("--smtps-port", type=int, default=2465, help="submission with implicit TLS")
    profile.add_argument("--cert", help="the bridge's TLS certificate (PEM); default: its self-signed one")
    profile.add_argument(
        "--no-certificate", action="store_true", help="a publicly trusted certificate: include none in the profile"
    )
    profile.add_argument("--name", help="the account's display name")
    profile.add_argument("--out", default=".", help="directory to write the files to")
    profile.set_defaults(func=_cmd_bridge_profile)

    submission = sub.add_parser(
        "submission-server",
        help="run the SMTP submission listeners in the foreground, configured by POSTROOM_* environment variables "
        "(the container entry point of the optional AWS service; see infrastructure/README.md)",
    )
    submission.set_defaults(func=_cmd_submission_server)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create an API key and print it once")
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'shop backend'")
    create.add_argument("--scopes", default="messages:send,messages:read", help="comma list, or 'all'")
    create.add_argument("--tenant", default="default", help="keys only see their own tenant's messages")
    create.add_argument("--table", help="DynamoDB table (default: $POSTROOM_TABLE)")
    create.add_argument(
        "--mailboxes",
        help="addresses whose mailboxes the key may use: support@shop.example, *@shop.example or *; comma list",
    )
    create.set_defaults(func=_cmd_keys_create)
    disable = keys_sub.add_parser(
        "disable", help="disable keys by id (the key_id shown by GET /v1/me and in logs; 8+ characters of it will do)"
    )
    disable.add_argument("key_ids", nargs="+", metavar="key_id")
    disable.add_argument("--yes", action="store_true", help="confirm disabling more than one key")
    disable.add_argument("--table", help="DynamoDB table (default: $POSTROOM_TABLE)")
    disable.set_defaults(func=_cmd_keys_disable)

    stores = sub.add_parser("stores", help="manage shops whose order webhooks Postroom receives")
    stores_sub = stores.add_subparsers(dest="stores_command", required=True)
    add = stores_sub.add_parser("add", help="add or replace a store and its webhook secret")
    add.add_argument("store_id", help="the {store} in /v1/hooks/<platform>/{store}: lower-case letters, digits, '-'")
    add.add_argument("--platform", required=True, choices=["shopify", "woocommerce"])
    add.add_argument("--secret", help="the webhook signing secret (or $POSTROOM_STORE_SECRET)")
    add.add_argument("--from", dest="sender", required=True, help="sender, e.g. 'Shop <orders@shop.example>'")
    add.add_argument("--shop-name", default="", help="the shop's name in the mails (default: the store id)")
    add.add_argument("--support-email", default="", help="shown in the mails' footer")
    add.add_argument("--tenant", default="default", help="the tenant the order mails belong to")
    add.add_argument("--reminder-delay", type=int, default=60, help="minutes before an abandoned-checkout reminder")
    add.add_argument("--locale", default="", help="money/date/country-name formats when an order names no customer "
                     "locale (WooCommerce never does), e.g. de-DE; default English")  # fmt: skip
    add.add_argument("--table", help="DynamoDB table (default: $POSTROOM_TABLE)")
    add.add_argument("--secret-prefix", help="the stack's StoreSecretPrefix output")
    add.add_argument("--local", action="store_true", help="add it to the running `postroom local` stack")
    add.set_defaults(func=_cmd_stores_add)
    from postroom.doctor.doctor_commands import add_doctor_command

    add_doctor_command(sub)

    from postroom.deliver import dkim_commands

    dkim_commands.register(sub)
    addresses = sub.add_parser(
        "addresses", help="manage inbound addresses (each gets Inbox, Drafts, Sent, Junk, Archive, Trash)"
    )
    addresses_sub = addresses.add_subparsers(dest="addresses_command", required=True)
    add = addresses_sub.add_parser("create", help="register an inbound address")
    add.add_argument("address")
    add.add_argument(
        "--tenant", default="default", help="the tenant whose keys may read its mail (keys of other tenants never can)"
    )
    add.add_argument("--table", help="DynamoDB table (default: $POSTROOM_TABLE)")
    add.set_defaults(func=_cmd_addresses_create)
    return parser


def _cmd_addresses_create(args: argparse.Namespace) -> int:
    from postroom.core import aws
    from postroom.mailbox.mailbox_store import MailboxStore

    table = args.table or os.environ.get("POSTROOM_TABLE")
    if not table:
        raise SystemExit("give --table (the stack's TableName output) or set POSTROOM_TABLE")
    if "@" not in args.address or "+" in args.address.partition("@")[0]:
        raise SystemExit("give a base address like support@shop.example (no +tag)")
    store = MailboxStore(aws.client("dynamodb"), table)
    created = store.create_address(args.address, args.tenant)
    owner = store.address_tenant(args.address)
    if created:
        print(f"{args.address.lower()}: created for tenant {owner}")
        return 0
    print(f"{args.address.lower()}: already registered to tenant {owner}")
    return 0 if owner == args.tenant else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
