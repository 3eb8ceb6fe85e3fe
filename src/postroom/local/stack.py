"""The local stack: the real handlers over an AWS emulation on loopback, no AWS account and no Docker.

    moto server (127.0.0.1)  ←  resources created from template.yaml's own properties
    HTTP gateway             →  API proxy events  →  functions/send_api/app.py
    SQS poller               →  SQS batch events  →  functions/worker/app.py  →  SES (moto) or SMTP (MX)

By default outbound SMTP runs in a *sandbox*: a DNS server on loopback answers every MX query with a loopback
host, where an SMTP sink stores each message as an .eml file — so a fresh machine can send without an internet
connection or a port-25 exception. Setting POSTROOM_DNS_NAMESERVERS turns the sandbox off: MX lookups then go to
those servers and mail goes wherever they point (POSTROOM_SMTP_PORT sets the port used at the MX hosts).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postroom.local.gateway import ApiGateway
from postroom.local.handlers import LocalFunction
from postroom.local.inbound_smtp import InboundSmtpListener, start_inbound_listener
from postroom.local.poller import SqsPoller

if TYPE_CHECKING:
    from postroom.local.template import LocalResources

log = logging.getLogger("postroom.local")

REGION = "us-east-1"
# Resource names always come from the emulation; a stale value in the caller's environment must not win.
_RESOURCE_VARS = ("POSTROOM_TABLE", "POSTROOM_BUCKET", "POSTROOM_QUEUE_URL", "POSTROOM_DLQ_URL")
# Template parameters a user may set through the same environment variables the functions read.
_PARAMETER_ENV = {
    "SendingDomains": "POSTROOM_SENDING_DOMAINS",
    "DefaultDelivery": "POSTROOM_DEFAULT_DELIVERY",
    "DnsNameservers": "POSTROOM_DNS_NAMESERVERS",
    "SmtpPort": "POSTROOM_SMTP_PORT",
    "HeloName": "POSTROOM_HELO_NAME",
    "InboundDomains": "POSTROOM_INBOUND_DOMAINS",
    "InboundCatchAll": "POSTROOM_INBOUND_CATCH_ALL",
    "ReturnPathDomain": "POSTROOM_RETURN_PATH_DOMAIN",
}
LOCAL_PARAMETER_DEFAULTS = {"SendingDomains": "example.com", "DefaultDelivery": "smtp", "HeloName": "localhost"}
# Receiving works out of the box: any address at example.com reaches support@example.com's Inbox.
LOCAL_PARAMETER_DEFAULTS |= {"InboundDomains": "example.com", "InboundCatchAll": "example.com=support"}


def repo_root() -> Path:
    """The checkout holding template.yaml and functions/ (the package is installed from it in editable mode)."""
    env = os.environ.get("POSTROOM_HOME")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]
    for candidate in candidates:
        if (candidate / "template.yaml").is_file() and (candidate / "functions").is_dir():
            return candidate
    raise FileNotFoundError(
        "cannot find template.yaml and functions/: run from the Postroom checkout or set POSTROOM_HOME"
    )


@dataclass
class StackConfig:
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    aws_port: int = 0  # 0: any free port
    dev_api_key: str | None = None
    sandbox: bool = True
    outbox: Path | None = None  # sandbox sink directory
    root: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    poll_wait_seconds: int = 1
    submission_port: int | None = None  # SMTP submission listener (STARTTLS, AUTH with an API key); None: off
    imap_port: int | None = None  # the bridge's IMAP listener (loopback, user: an address, password: a key); None: off
    pop3_port: int | None = None  # the bridge's POP3 listener; None: off
    # Where the emulation's journal lives (postroom.local.durable); None: state lives in memory and dies with the
    # process (tests, `postroom local --ephemeral`).
    state_dir: Path | None = None

    @classmethod
    def from_env(cls) -> StackConfig:
        env = os.environ
        params = {name: env[var] for name, var in _PARAMETER_ENV.items() if env.get(var)}
        return cls(
            api_port=int(env.get("POSTROOM_API_PORT", "8000")),
            aws_port=int(env.get("POSTROOM_AWS_PORT", "0")),
            dev_api_key=env.get("POSTROOM_DEV_API_KEY") or None,
            sandbox=not env.get("POSTROOM_DNS_NAMESERVERS"),
            outbox=Path(env["POSTROOM_OUTBOX"]) if env.get("POSTROOM_OUTBOX") else None,
            parameters=params,
            submission_port=int(env.get("POSTROOM_SUBMISSION_PORT", "2587")),
            imap_port=int(env.get("POSTROOM_IMAP_PORT", "2143")) or None,
            pop3_port=int(env.get("POSTROOM_POP3_PORT", "2110")) or None,
        )


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.root = self.config.root or repo_root()
        self.api_key: str = ""
        self._resources: LocalResources | None = None
        self.inbound: InboundSmtpListener | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: list[SqsPoller] = []
        self.ses_publishers: list[Any] = []
        self.gateway: ApiGateway | None = None
        self.moto: Any = None
        self.aws_endpoint = ""
        self.sink: Any = None
        self.dns: Any = None
        self.dns_zone_file: Path | None = None  # sandbox only: records served by the local DNS server (JSON zone)
        self._gateway_thread: threading.Thread | None = None
        self._saved_env: dict[str, str | None] = {}
        self.submission: Any = None
        self.bridge: Any = None
        self.firer: Any = None
        self.replayed: Any = None  # postroom.local.durable.ReplayReport of this start, None when ephemeral

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        from postroom.local import template as tpl
        from postroom.local.durable import Journal, MotoServer
        from postroom.testing import moto_transactions

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log drowns the rest
        moto_transactions.install()  # the server runs in this process: keep its transactions O(items touched)
        journal = Journal(self.config.state_dir) if self.config.state_dir is not None else None
        self.moto = MotoServer("127.0.0.1", self.config.aws_port, journal)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.aws_endpoint = f"http://{host}:{port}"
        # moto keeps its state in process-wide backends, shared by every server in the process: start from empty,
        # so a stack never sees a previous stack's tables, queues or sent mail.
        reset = urllib.request.Request(f"{self.aws_endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(reset, timeout=10):  # noqa: S310 - the loopback emulator just started
            pass
        # Then what an earlier run of this stack acknowledged, before any handler runs; creating the template's
        # resources below finds them there and reuses them.
        self.replayed = self.moto.replay()
        self._set_env(
            {
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
                "POWERTOOLS_DEV": os.environ.get("POWERTOOLS_DEV", "false"),
            }
        )
        if self.config.sandbox:
            self._start_sandbox()

        template = tpl.load_template(self.root / "template.yaml")
        parameters = {**tpl.parameter_defaults(template), **LOCAL_PARAMETER_DEFAULTS, **self.config.parameters}
        if self.config.sandbox:
            parameters["DnsNameservers"] = f"127.0.0.1:{self.dns.port}"
            parameters["SmtpPort"] = str(self.sink.port)
        self.parameters = parameters

        import boto3

        session = boto3.session.Session(region_name=REGION)
        self._resources = tpl.create_resources(template, session, parameters=parameters, prefix="postroom-local")
        env: dict[str, str] = {}
        for route in tpl.api_routes(template):
            env.update(tpl.function_environment(template, route.function_logical_id, self.resources, parameters))
        for source in tpl.sqs_event_sources(template):
            env.update(tpl.function_environment(template, source.function_logical_id, self.resources, parameters))
        # The dashboard link names an AWS console page that no local stack has: the Overview shows none.
        env["POSTROOM_DASHBOARD_URL"] = ""
        sandbox_vars = (
            frozenset({"POSTROOM_DNS_NAMESERVERS", "POSTROOM_SMTP_PORT"}) if self.config.sandbox else frozenset()
        )
        self._set_env(env, force=sandbox_vars)

        from postroom.core import aws
        from postroom.wiring.services import reset_services

        reset_services()
        self._end_dead_invocations()
        self._verify_sending_identities(session, parameters.get("SendingDomains", ""))
        self._load_functions(template)
        self._create_dev_key()
        self._start_gateway(tpl.api_routes(template))
        self._point_links_at_gateway()
        self._start_pollers(tpl.sqs_event_sources(template), aws.client("sqs"))
        ports = (self.config.submission_port, self.config.imap_port, self.config.pop3_port)
        if any(port is not None for port in ports):
            self._start_mail_client_listeners()
        self._start_schedule_firer()
        self._start_ses_events(session)
        self.inbound = start_inbound_listener(
            self.root, self.functions, self.config.api_port, template
        )  # SES's receiving side: SMTP on loopback
        self._write_local_info()
        return self

    def stop(self) -> None:
        if self.inbound is not None:
            self.inbound.stop()
        if self.bridge is not None:
            self.bridge.stop()  # the submission listener is one of the bridge's
            self.bridge = None
            self.submission = None
        if self.firer is not None:
            self.firer.stop()
            self.firer.join(timeout=5)
        self._remove_local_info()
        for publisher in self.ses_publishers:
            publisher.stop()
        for poller in self.pollers:
            poller.stop()
        for poller in self.pollers:
            poller.join(timeout=5)
        if self.gateway is not None:
            self.gateway.shutdown()
            self.gateway.server_close()
        if self.sink is not None:
            self.sink.stop()
        if self.dns is not None:
            self.dns.stop()
        if self.moto is not None:
            # Everything that talks to the emulation has stopped: a quiet point, so the next start loads a snapshot
            # instead of replaying this run's journal.
            self.moto.checkpoint()
            self.moto.stop()
        self._restore_env()
        from postroom.wiring.services import reset_services
        from postroom.wiring.worker_batch import reset_resolver

        reset_services()
        reset_resolver()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        return self.gateway.url if self.gateway else ""

    # --- pieces -----------------------------------------------------------------------------------------------
    def _set_env(self, values: dict[str, str], *, force: frozenset[str] = frozenset()) -> None:
        for name, value in values.items():
            current = os.environ.get(name)
            if name not in self._saved_env:
                self._saved_env[name] = current
            user_setting = name.startswith("POSTROOM_") and name not in _RESOURCE_VARS and name not in force
            if user_setting and self._saved_env[name]:
                continue  # a POSTROOM_* setting in the caller's environment wins over the template (see README)
            os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _start_sandbox(self) -> None:
        from postroom.testing.dns_server import LoopbackDnsServer
        from postroom.testing.smtp_peers import RecordingSink

        outbox = self.config.outbox or (self.root / ".postroom" / "outbox")
        outbox.mkdir(parents=True, exist_ok=True)
        self.outbox = outbox
        self.sink = RecordingSink(outbox=outbox)
        self.sink.start()
        # The zone file is the local DNS provider: `postroom domains publish-local` writes a domain's records there.
        self.dns_zone_file = self.root / ".postroom" / "local-dns.json"
        self.dns = LoopbackDnsServer(catch_all_mx="127.0.0.1", zone_file=self.dns_zone_file)
        self.dns.start()

    def _end_dead_invocations(self) -> None:
        """After a restart on durable state, end what the old process left in progress, as Lambda's timeout would.

        Every invocation of the old process died with it (a kill, or a clean stop in the middle of a batch), but an
        idempotency record it left in progress (the worker's send-once guard around an SMTP transaction) still claims
        its key until that invocation's deadline, and the worker that meets it puts the message back for the queue's
        whole visibility timeout (12 minutes). Expiring such records now lets the queue be delivered at once;
        Powertools then runs the guarded send again, as it does on AWS once the dead invocation's timeout has passed.
        """
        table = os.environ.get("POSTROOM_IDEMPOTENCY_TABLE")
        if not table or self.replayed is None:
            return  # ephemeral: nothing survives from an earlier process
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
        from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS

        from postroom.core import aws

        dynamodb = aws.client("dynamodb")
        # The layer only lends its attribute names, so they are Powertools' own rather than copies of them.
        layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb)
        in_progress = {":in_progress": {"S": STATUS_CONSTANTS["INPROGRESS"]}}
        names = {"#status": layer.status_attr, "#until": layer.in_progress_expiry_attr}
        keys = [layer.key_attr, *([layer.sort_key_attr] if layer.sort_key_attr else [])]
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="#status = :in_progress",
            ExpressionAttributeNames={"#status": layer.status_attr},
            ExpressionAttributeValues=in_progress,
        ):
            for item in page.get("Items", []):
                dynamodb.update_item(
                    TableName=table,
                    Key={name: item[name] for name in keys},
                    UpdateExpression="SET #until = :now",
                    ConditionExpression="#status = :in_progress",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={**in_progress, ":now": {"N": str(int(time.time() * 1000) - 1)}},
                )
                log.warning("ended an in-progress idempotency record left by the previous run: %s", item[keys[0]])

    def _verify_sending_identities(self, session: Any, spec: str) -> None:
        from postroom.core.settings import parse_sending_domains

        ses = session.client("ses")
        for domain in parse_sending_domains(spec):
            # moto marks identities verified at once; on AWS this is the DNS verification step of `sam deploy`.
            ses.verify_domain_identity(Domain=domain)

    def _load_functions(self, template: dict[str, Any]) -> None:
        from postroom.local import template as tpl

        globals_fn = template.get("Globals", {}).get("Function", {})
        wanted = {r.function_logical_id for r in tpl.api_routes(template)}
        wanted |= {s.function_logical_id for s in tpl.sqs_event_sources(template)}
        for logical_id in sorted(wanted):
            props = template["Resources"][logical_id]["Properties"]
            module_name, _, handler = props["Handler"].rpartition(".")
            handler_file = self.root / props["CodeUri"] / f"{module_name.replace('.', '/')}.py"
            self.functions[logical_id] = LocalFunction(
                logical_id,
                handler_file,
                handler,
                timeout=float(props.get("Timeout", globals_fn.get("Timeout", 30))),
                memory=int(props.get("MemorySize", globals_fn.get("MemorySize", 512))),
            )

    def _create_dev_key(self) -> None:
        from postroom.core.auth import ALL_SCOPES
        from postroom.wiring.services import services

        self.api_key = services().keys.create(
            name="local dev key",
            scopes=ALL_SCOPES,
            tenant="default",
            key=self.config.dev_api_key,
            mailboxes=frozenset({"*"}),  # every inbound address
        )

    def _start_mail_client_listeners(self) -> None:
        """SMTP submission, IMAP and POP3 as `postroom bridge` serves them, over this stack's API (plain IMAP and POP3,
        loopback only). One Bridge runs them all, so they share one failed-login lockout as the README promises: a
        password guesser locked out of IMAP is locked out of SMTP too (two listeners each had their own before)."""
        from postroom.protocols.bridge.runner import Bridge, BridgeConfig
        from postroom.protocols.tlscert import write_self_signed

        certificate, key = write_self_signed(self.root / ".postroom" / "tls")
        config = BridgeConfig(
            api_url=self.api_url,
            smtp_port=self.config.submission_port,
            smtps_port=None,
            imaps_port=None,
            pop3s_port=None,
            imap_port=self.config.imap_port,
            pop3_port=self.config.pop3_port,
            certificate=certificate,
            key=key,
            state_dir=self.root / ".postroom" / "bridge",
        )
        self.bridge = Bridge(config).start()
        self.submission = self.bridge.listeners.get("smtp")

    def _start_gateway(self, routes: list[Any]) -> None:
        from postroom.local.template import match_route

        def resolve(method: str, path: str) -> tuple[Any, str, dict[str, str]] | None:
            # API Gateway's precedence: literal segments before {parameters} before {greedy+}.
            matched = match_route(routes, method, path)
            if matched is None:
                return None
            route, params = matched
            return self.functions[route.function_logical_id].invoke, route.path, params

        self.gateway = ApiGateway((self.config.api_host, self.config.api_port), resolve)
        self._gateway_thread = threading.Thread(target=self.gateway.serve_forever, name="api-gateway", daemon=True)
        self._gateway_thread.start()

    def _point_links_at_gateway(self) -> None:
        """Tracking and unsubscribe links in sent mail lead to this gateway, and webhooks may go to loopback
        receivers (only here: everywhere else private addresses are refused)."""
        from postroom.wiring.services import reset_services

        self._set_env({"POSTROOM_PUBLIC_URL": self.api_url}, force=frozenset({"POSTROOM_PUBLIC_URL"}))
        self._set_env({"POSTROOM_WEBHOOK_ALLOW_PRIVATE": "true"})
        reset_services()

    @property
    def resources(self) -> LocalResources:
        """What start() created from the template: logical id -> its Ref, Arn and other attributes."""
        if self._resources is None:
            raise RuntimeError("the stack's resources are made by start()")
        return self._resources

    def _start_ses_events(self, session: Any) -> None:
        """moto publishes no SES configuration-set events: publish them as SES would (postroom.local.ses_events)."""
        from postroom.local.ses_events import SesEventPublisher
        from postroom.local.template import DEFAULT_ACCOUNT_ID

        resources = self.resources
        for logical_id, kind in resources.types.items():
            if kind != "AWS::SES::ConfigurationSetEventDestination":
                continue
            destination = resources[logical_id]
            publisher = SesEventPublisher(
                sns=session.client("sns"),
                topic_arn=destination["TopicArn"],
                configuration_set=destination["ConfigurationSetName"],
                account_id=DEFAULT_ACCOUNT_ID,
                region=REGION,
            )
            publisher.start()
            self.ses_publishers.append(publisher)

    def _start_pollers(self, sources: list[Any], sqs: Any) -> None:
        resources = self.resources
        for source in sources:
            queue = resources[source.queue_logical_id]
            poller = SqsPoller(
                sqs=sqs,
                queue_url=queue["Ref"],
                queue_arn=queue["Arn"],
                invoke=self.functions[source.function_logical_id].invoke,
                batch_size=source.batch_size,
                report_batch_item_failures=source.report_batch_item_failures,
                region=REGION,
                wait_seconds=self.config.poll_wait_seconds,
            )
            poller.start()
            self.pollers.append(poller)

    def _start_schedule_firer(self) -> None:
        # moto never fires EventBridge Scheduler schedules; send_at and abandoned-checkout reminders need them to.
        from postroom.core import aws
        from postroom.local.schedule_runner import ScheduleFirer

        self.firer = ScheduleFirer(scheduler=aws.client("scheduler"), sqs=aws.client("sqs"))
        self.firer.start()

    @property
    def local_info_path(self) -> Path:
        return self.root / ".postroom" / "local.json"

    def _write_local_info(self) -> None:
        """Where the running stack is, for ``postroom stores add --local`` (run in another terminal)."""
        import json

        info = {
            "api_url": self.api_url,
            "aws_endpoint": self.aws_endpoint,
            "region": REGION,
            "table": os.environ.get("POSTROOM_TABLE", ""),
            "store_secret_prefix": os.environ.get("POSTROOM_STORE_SECRET_PREFIX", ""),
            "dns_zone_file": str(self.dns_zone_file) if self.dns_zone_file is not None else None,
            "pid": os.getpid(),
        }
        self.local_info_path.parent.mkdir(parents=True, exist_ok=True)
        self.local_info_path.write_text(json.dumps(info, indent=2))

    def _remove_local_info(self) -> None:
        try:
            if self.local_info_path.is_file() and f'"pid": {os.getpid()}' in self.local_info_path.read_text():
                self.local_info_path.unlink()
        except OSError:
            pass
