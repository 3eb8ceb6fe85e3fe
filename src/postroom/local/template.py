"""The local stack, derived from ``template.yaml`` so it cannot drift from what is deployed.

The local stack declares no table, queue or bucket of its own. It reads the SAM template, creates the stateful
resources the template declares (DynamoDB tables, SQS queues, S3 buckets, SNS topics and SQS subscriptions) from the
template's own properties in emulated AWS (a moto server), and evaluates the intrinsic functions (``Ref``,
``Fn::GetAtt``, ``Fn::Sub``, conditions...) the way CloudFormation would, so a function's environment locally is the
one it gets on AWS. What the local stack does not emulate is listed by :func:`unemulated_resources`, so the harness
can say so instead of pretending.

It understands a declared subset of CloudFormation, tabled below (:data:`SUPPORTED_INTRINSICS`,
:data:`SUPPORTED_RESOURCE_TYPES`): a template using anything outside it is refused with an
:class:`UnsupportedTemplateError` naming the construct and where it is, rather than half-understood. A new resource type
or intrinsic in ``template.yaml`` therefore fails ``postroom local`` and the infrastructure tests until it is declared
here, with how the local stack treats it.

AWS clients come from a boto3 ``Session`` (pointed at moto with the standard ``AWS_ENDPOINT_URL`` variable, or an
explicit ``endpoint_url``) or from any ``service name -> client`` callable.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    import os

    from boto3.session import Session

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGION",
    "SUPPORTED_INTRINSICS",
    "SUPPORTED_RESOURCE_TYPES",
    "ClientFactory",
    "FunctionSpec",
    "LocalResources",
    "Route",
    "SqsSource",
    "TemplateError",
    "TemplateLoader",
    "UnemulatedResource",
    "UnsupportedTemplateError",
    "api_routes",
    "check_supported",
    "create_resources",
    "effective_parameters",
    "function_environment",
    "function_spec",
    "load_template",
    "match_route",
    "parameter_defaults",
    "resolve",
    "sqs_event_sources",
    "translate",
    "unemulated_resources",
]

ClientFactory = Callable[[str], Any]
"""``service name -> boto3 client``, e.g. ``lambda service: session.client(service, endpoint_url=url)``."""

DEFAULT_REGION: Final = "us-east-1"
DEFAULT_ACCOUNT_ID: Final = "123456789012"  # moto's default account

_SERVERLESS_FUNCTION: Final = "AWS::Serverless::Function"


class TemplateError(Exception):
    """The template cannot be read, resolved or emulated. The message names the place in the template."""


class UnsupportedTemplateError(TemplateError):
    """The template uses a resource type or intrinsic function outside the declared subset the local stack reads."""


# ---------------------------------------------------------------------------------------------------------------------
# The declared subset: everything the local stack reads, and how it treats each resource type
# ---------------------------------------------------------------------------------------------------------------------

# Intrinsic functions (and condition functions) :func:`resolve` evaluates. Others (Fn::ImportValue, Fn::Cidr,
# Fn::Transform, the LanguageExtensions functions...) are refused, wherever they appear in the template.
SUPPORTED_INTRINSICS: Final = frozenset(
    {
        "Ref",
        "Condition",
        "Fn::GetAtt",
        "Fn::Sub",
        "Fn::Join",
        "Fn::If",
        "Fn::Equals",
        "Fn::Not",
        "Fn::And",
        "Fn::Or",
        "Fn::Select",
        "Fn::Split",
        "Fn::FindInMap",
        "Fn::Base64",
        "Fn::GetAZs",
    }
)

# Created in emulated AWS from their own properties: see _EMULATORS at the end of the "Emulated resources" section.
# Resource types the local harness itself stands in for, and how.
_HARNESS_TYPES: Final[Mapping[str, str]] = {
    _SERVERLESS_FUNCTION: "runs in-process: the local harness calls the handler (see api_routes, sqs_event_sources)",
    "AWS::Serverless::Api": "served by the local HTTP gateway (see api_routes)",
    "AWS::Serverless::LayerVersion": "the installed postroom package stands in for the layer",
    "AWS::Logs::LogGroup": "logs go to the console",
    "AWS::ECS::Service": "the local stack runs the same SMTP submission listener itself (POSTROOM_SUBMISSION_PORT)",
}

# Permissions: moto checks no policy, so locally they are declared and not enforced.
_POLICY_TYPES: Final = frozenset(
    {
        "AWS::S3::BucketPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::Lambda::Permission",
    }
)

# Declared and knowingly not emulated: nothing a handler reads at run time depends on them.
_NOT_EMULATED_TYPES: Final[Mapping[str, str]] = {
    "AWS::ApiGateway::Account": "API Gateway's CloudWatch role: the local gateway logs to the console",
    "AWS::ApiGateway::DomainName": "the API's custom domain: the local gateway listens on loopback",
    "AWS::ApiGateway::BasePathMapping": "the API's custom domain: the local gateway listens on loopback",
    "AWS::CloudFormation::WaitConditionHandle": "a placeholder resource with no behaviour",
    "AWS::CloudWatch::Alarm": "alarms: the local stack has no metrics to watch",
    "AWS::CloudWatch::Dashboard": "dashboards: nothing to show locally",
    "AWS::Events::Rule": "EventBridge rules: the local stack runs its schedules itself (schedule_runner)",
    "AWS::Lambda::EventSourceMapping": "the local poller reads the functions' SQS events instead",
    "AWS::Lambda::Function": "a plain Lambda function (custom resources, hooks): not run locally",
    "AWS::KMS::Key": "encryption keys: moto stores data unencrypted",
    "AWS::KMS::Alias": "encryption keys: moto stores data unencrypted",
    "AWS::SES::ReceiptRuleSet": "inbound rules: the local stack's SMTP listener plays SES receiving",
    "AWS::SES::ReceiptRule": "inbound rules: the local stack's SMTP listener plays SES receiving",
    "Custom::SesActiveReceiptRuleSet": "activates the inbound rule set on AWS: locally none exists",
    "AWS::ECS::Cluster": "the submission service's cluster: its listener runs in the local stack",
    "AWS::ECS::TaskDefinition": "the submission service's task: its listener runs in the local stack",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "networking: everything local listens on loopback",
    "AWS::ElasticLoadBalancingV2::Listener": "networking: everything local listens on loopback",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "networking: everything local listens on loopback",
    "AWS::EC2::VPC": "networking: everything local listens on loopback",
    "AWS::EC2::Subnet": "networking: everything local listens on loopback",
    "AWS::EC2::InternetGateway": "networking: everything local listens on loopback",
    "AWS::EC2::VPCGatewayAttachment": "networking: everything local listens on loopback",
    "AWS::EC2::EIP": "networking: everything local listens on loopback",
    "AWS::EC2::NatGateway": "networking: everything local listens on loopback",
    "AWS::EC2::RouteTable": "networking: everything local listens on loopback",
    "AWS::EC2::Route": "networking: everything local listens on loopback",
    "AWS::EC2::SubnetRouteTableAssociation": "networking: everything local listens on loopback",
    "AWS::EC2::SecurityGroup": "networking: everything local listens on loopback",
    "AWS::EC2::VPCEndpoint": "networking: everything local listens on loopback",
}


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------

# Short-form tag -> long-form key. !Ref, !Condition and !GetAtt get special handling below.
_SHORT_FORMS: Final = {
    "Ref": "Ref",
    "Condition": "Condition",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Join": "Fn::Join",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "FindInMap": "Fn::FindInMap",
    "ImportValue": "Fn::ImportValue",
    "Base64": "Fn::Base64",
    "GetAZs": "Fn::GetAZs",
    "Cidr": "Fn::Cidr",
}


class TemplateLoader(yaml.SafeLoader):
    """A ``SafeLoader`` that reads CloudFormation's short-form tags (``!Ref``, ``!GetAtt``, ``!Sub``...) as the
    long forms (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``, ``{"Fn::Sub": ...}``), as CloudFormation does."""


# CloudFormation reads unquoted dates as strings (a policy's `Version: 2012-10-17` must stay a string).
TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_short_form(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    long_form = _SHORT_FORMS.get(tag_suffix)
    if long_form is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(None, None, f"!{tag_suffix} on an unexpected node", node.start_mark)
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, dot, attribute = value.partition(".")
        if not dot or not resource or not attribute:
            raise yaml.constructor.ConstructorError(
                None, None, f"!GetAtt {value!r} is not of the form Resource.Attribute", node.start_mark
            )
        value = [resource, attribute]
    return {long_form: value}


TemplateLoader.add_multi_constructor("!", _construct_short_form)


def load_template(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a CloudFormation/SAM YAML (or JSON) template, short-form tags turned into long forms."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        template = yaml.load(text, Loader=TemplateLoader)  # noqa: S506 - TemplateLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not a readable template: {exc}") from exc
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path}: a template is a mapping with a Resources mapping")
    return template


# ---------------------------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------------------------


def _scalar_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """The template's parameters that have a ``Default``, as CloudFormation sees them (strings)."""
    defaults: dict[str, str] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if "Default" in spec:
            default = spec["Default"]
            defaults[name] = ",".join(map(_scalar_str, default)) if isinstance(default, list) else _scalar_str(default)
    return defaults


def effective_parameters(template: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Defaults merged with ``overrides``, checked as CloudFormation checks them at deploy time: unknown names,
    required parameters left out, ``AllowedValues``, ``AllowedPattern``, ``Min/MaxLength``, ``Min/MaxValue``."""
    specs: Mapping[str, Any] = template.get("Parameters") or {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise TemplateError(f"Parameters: {', '.join(unknown)} not declared by the template")
    values = parameter_defaults(template) | {name: _scalar_str(value) for name, value in overrides.items()}
    missing = sorted(set(specs) - set(values))
    if missing:
        raise TemplateError(f"Parameters: {', '.join(missing)} have no Default and need a value")
    for name, value in values.items():
        _check_parameter(name, specs[name], value)
    return values


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    where = f"Parameters.{name}"
    kind = str(spec.get("Type", "String"))
    items = value.split(",") if _is_list_type(kind) else [value]
    allowed = spec.get("AllowedValues")
    pattern = spec.get("AllowedPattern")
    for item in items:
        if allowed is not None and item not in {_scalar_str(a) for a in allowed}:
            raise TemplateError(f"{where}: {item!r} is not one of {allowed}")
        if pattern is not None and re.fullmatch(str(pattern), item) is None:
            hint = spec.get("ConstraintDescription", f"must match {pattern}")
            raise TemplateError(f"{where}: {item!r} {hint}")
        if kind in ("Number", "List<Number>"):
            try:
                number = float(item)
            except ValueError:
                raise TemplateError(f"{where}: {item!r} is not a number") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise TemplateError(f"{where}: {item} is below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise TemplateError(f"{where}: {item} is above MaxValue {spec['MaxValue']}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise TemplateError(f"{where}: shorter than MinLength {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise TemplateError(f"{where}: longer than MaxLength {spec['MaxLength']}")


def _is_list_type(kind: str) -> bool:
    return kind == "CommaDelimitedList" or kind.startswith("List<")


# ---------------------------------------------------------------------------------------------------------------------
# Intrinsic functions
# ---------------------------------------------------------------------------------------------------------------------


class _NoValue:
    """``Ref: AWS::NoValue`` - the enclosing key or list item disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE: Final = _NoValue()


def _pseudo_parameters(region: str, account_id: str, stack_name: str) -> dict[str, Any]:
    partition, url_suffix = "aws", "amazonaws.com"
    if region.startswith("cn-"):
        partition, url_suffix = "aws-cn", "amazonaws.com.cn"
    elif region.startswith("us-gov-"):
        partition = "aws-us-gov"
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": partition,
        "AWS::URLSuffix": url_suffix,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
        "AWS::NotificationARNs": [],
    }


@dataclass(frozen=True)
class _Context:
    template: Mapping[str, Any]
    resources: Mapping[str, Mapping[str, Any]]
    parameters: Mapping[str, str]
    pseudo: Mapping[str, Any]


def resolve(
    value: Any,
    resources: Mapping[str, Mapping[str, Any]],
    parameters: Mapping[str, str] | None = None,
    *,
    template: Mapping[str, Any] | None = None,
    path: str = "",
) -> Any:
    """Evaluate the intrinsic functions in ``value`` as CloudFormation would.

    ``resources`` maps logical ids to their attributes (``{"Ref": ..., "Arn": ...}``), as :func:`create_resources`
    returns them; given a :class:`LocalResources`, its template, parameters and pseudo parameters are used too.
    ``parameters`` override the template's parameter defaults. ``template`` supplies ``Parameters``, ``Conditions``
    and ``Mappings`` when ``resources`` does not carry them. ``path`` prefixes error messages.

    Supported: ``Ref`` (resources, parameters, pseudo parameters, ``AWS::NoValue``), ``Fn::GetAtt``, ``Fn::Sub``
    (both forms), ``Fn::Join``, ``Fn::If``, ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Fn::Select``,
    ``Fn::Split``, ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::GetAZs``. Anything else raises :class:`TemplateError`.
    """
    if isinstance(resources, LocalResources):
        context = _Context(
            template=template if template is not None else resources.template,
            resources=resources,
            parameters={**resources.parameters, **(parameters or {})},
            pseudo=resources.pseudo_parameters,
        )
    else:
        context = _Context(
            template=template or {},
            resources=resources,
            parameters=dict(parameters or {}),
            pseudo=_pseudo_parameters(DEFAULT_REGION, DEFAULT_ACCOUNT_ID, "postroom"),
        )
    result = _evaluate(value, context, path or "$")
    return None if result is _NO_VALUE else result


def _evaluate(value: Any, ctx: _Context, path: str) -> Any:
    if isinstance(value, list):
        items = (_evaluate(item, ctx, f"{path}[{i}]") for i, item in enumerate(value))
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return _ref(argument, ctx, f"{path}.Ref")
        if isinstance(key, str) and key.startswith("Fn::"):
            return _function(key, argument, ctx, f"{path}.{key}")
    evaluated = {key: _evaluate(item, ctx, f"{path}.{key}") for key, item in value.items()}
    return {key: item for key, item in evaluated.items() if item is not _NO_VALUE}


def _function(name: str, argument: Any, ctx: _Context, path: str) -> Any:
    if name == "Fn::GetAtt":
        resource, attribute = _pair(argument, ctx, path)
        return _get_att(resource, attribute, ctx, path)
    if name == "Fn::Sub":
        return _sub(argument, ctx, path)
    if name == "Fn::Join":
        delimiter, items = _list_of(argument, 2, path)
        parts = _evaluate(items, ctx, f"{path}[1]")
        if not isinstance(parts, list):
            raise TemplateError(f"{path}: Fn::Join needs a list of values, got {parts!r}")
        return str(delimiter).join(_string(part, f"{path}[1]") for part in parts)
    if name == "Fn::If":
        condition, if_true, if_false = _list_of(argument, 3, path)
        chosen, index = (if_true, 1) if _condition(condition, ctx, f"{path}[0]") else (if_false, 2)
        return _evaluate(chosen, ctx, f"{path}[{index}]")
    if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
        return _evaluate_condition({name: argument}, ctx, path)
    if name == "Fn::Select":
        index, items = _list_of(argument, 2, path)
        index = _evaluate(index, ctx, f"{path}[0]")
        items = _evaluate(items, ctx, f"{path}[1]")
        try:
            return items[int(index)]
        except (IndexError, ValueError, TypeError):
            raise TemplateError(f"{path}: cannot select item {index!r} of {items!r}") from None
    if name == "Fn::Split":
        delimiter, text = _list_of(argument, 2, path)
        return _string(_evaluate(text, ctx, f"{path}[1]"), f"{path}[1]").split(str(delimiter))
    if name == "Fn::FindInMap":
        map_name, top_key, second_key = (_evaluate(part, ctx, path) for part in _list_of(argument, 3, path))
        try:
            return ctx.template["Mappings"][map_name][top_key][second_key]
        except (KeyError, TypeError):
            raise TemplateError(f"{path}: Mappings has no {map_name}.{top_key}.{second_key}") from None
    if name == "Fn::Base64":
        text = _string(_evaluate(argument, ctx, path), path)
        return base64.b64encode(text.encode()).decode()
    if name == "Fn::GetAZs":
        region = _evaluate(argument, ctx, path) or ctx.pseudo["AWS::Region"]
        return [f"{region}{zone}" for zone in "abc"]
    raise UnsupportedTemplateError(f"{path}: {name} is not supported by the local stack")


def _list_of(argument: Any, length: int, path: str) -> list[Any]:
    if not isinstance(argument, list) or len(argument) != length:
        raise TemplateError(f"{path}: expected a list of {length} items, got {argument!r}")
    return argument


def _pair(argument: Any, ctx: _Context, path: str) -> tuple[str, str]:
    if isinstance(argument, str):
        resource, _, attribute = argument.partition(".")
        return resource, attribute
    resource, attribute = _list_of(argument, 2, path)
    return str(resource), _string(_evaluate(attribute, ctx, f"{path}[1]"), f"{path}[1]")


def _string(value: Any, path: str) -> str:
    if isinstance(value, str | int | float | bool):
        return _scalar_str(value)
    raise TemplateError(f"{path}: expected a string, got {value!r}")


def _ref(name: Any, ctx: _Context, path: str) -> Any:
    if not isinstance(name, str):
        raise TemplateError(f"{path}: Ref takes a name, got {name!r}")
    if name == "AWS::NoValue":
        return _NO_VALUE
    if name in ctx.pseudo:
        return ctx.pseudo[name]
    specs: Mapping[str, Any] = ctx.template.get("Parameters") or {}
    if name in ctx.parameters or name in specs:
        return _parameter(name, specs.get(name) or {}, ctx, path)
    if name in ctx.resources:
        return ctx.resources[name]["Ref"]
    declared = (ctx.template.get("Resources") or {}).get(name)
    if declared is not None:
        raise TemplateError(f"{path}: Ref {name} is a {declared.get('Type')}, which the local stack does not emulate")
    raise TemplateError(f"{path}: Ref {name} names no parameter, resource or pseudo parameter")


def _parameter(name: str, spec: Mapping[str, Any], ctx: _Context, path: str) -> Any:
    if name in ctx.parameters:
        value = ctx.parameters[name]
    elif "Default" in spec:
        value = parameter_defaults({"Parameters": {name: spec}})[name]
    else:
        raise TemplateError(f"{path}: parameter {name} has no Default and no value was given")
    return value.split(",") if _is_list_type(str(spec.get("Type", "String"))) else value


def _get_att(resource: str, attribute: str, ctx: _Context, path: str) -> Any:
    attributes = ctx.resources.get(resource)
    if attributes is None:
        declared = (ctx.template.get("Resources") or {}).get(resource)
        if declared is not None:
            raise TemplateError(
                f"{path}: GetAtt {resource}.{attribute}: {resource} is a {declared.get('Type')}, "
                "which the local stack does not emulate"
            )
        raise TemplateError(f"{path}: GetAtt {resource}.{attribute}: no resource {resource}")
    if attribute not in attributes or attribute == "Ref":
        known = ", ".join(sorted(a for a in attributes if a != "Ref"))
        raise TemplateError(f"{path}: GetAtt {resource}.{attribute}: the local {resource} has only {known}")
    return attributes[attribute]


_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")


def _sub(argument: Any, ctx: _Context, path: str) -> str:
    if isinstance(argument, str):
        text, variables = argument, {}
    else:
        text, raw_variables = _list_of(argument, 2, path)
        if not isinstance(text, str) or not isinstance(raw_variables, dict):
            raise TemplateError(f"{path}: Fn::Sub takes a string, or a string and a mapping of variables")
        variables = {name: _evaluate(value, ctx, f"{path}[1].{name}") for name, value in raw_variables.items()}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name.startswith("!"):
            return "${" + name[1:] + "}"  # ${!Literal} is written out as ${Literal}
        if name in variables:
            return _string(variables[name], f"{path}[1].{name}")
        if "." in name:
            resource, attribute = name.split(".", 1)
            return _string(_get_att(resource, attribute, ctx, path), f"{path} ${{{name}}}")
        return _string(_ref(name, ctx, path), f"{path} ${{{name}}}")

    return _SUB_VARIABLE.sub(substitute, text)


def _condition(name: Any, ctx: _Context, path: str) -> bool:
    conditions: Mapping[str, Any] = ctx.template.get("Conditions") or {}
    if not isinstance(name, str) or name not in conditions:
        raise TemplateError(f"{path}: no condition named {name!r} in Conditions")
    return _evaluate_condition(conditions[name], ctx, f"Conditions.{name}")


def _evaluate_condition(value: Any, ctx: _Context, path: str) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        raise TemplateError(f"{path}: a condition is Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition, got {value!r}")
    ((name, argument),) = value.items()
    where = f"{path}.{name}"
    if name == "Condition":
        return _condition(argument, ctx, where)
    if name == "Fn::Equals":
        left, right = (_evaluate(side, ctx, f"{where}[{i}]") for i, side in enumerate(_list_of(argument, 2, where)))
        return bool(_comparable(left) == _comparable(right))
    if name == "Fn::Not":
        (inner,) = _list_of(argument, 1, where)
        return not _evaluate_condition(inner, ctx, f"{where}[0]")
    if name in ("Fn::And", "Fn::Or"):
        if not isinstance(argument, list) or not 2 <= len(argument) <= 10:
            raise TemplateError(f"{where}: takes 2 to 10 conditions")
        results = (_evaluate_condition(inner, ctx, f"{where}[{i}]") for i, inner in enumerate(argument))
        return all(results) if name == "Fn::And" else any(results)
    raise TemplateError(f"{path}: {name} is not a condition function")


def _comparable(value: Any) -> Any:
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return _scalar_str(value) if isinstance(value, str | int | float | bool) else value


# ---------------------------------------------------------------------------------------------------------------------
# Emulated resources
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class LocalResources(Mapping[str, Mapping[str, Any]]):
    """What :func:`create_resources` made: logical id -> ``{"Ref": ..., "Arn": ..., other GetAtt attributes}``.

    It also keeps what :func:`resolve` needs to evaluate more of the template against these resources: the template,
    the effective parameters and the pseudo parameters.
    """

    template: Mapping[str, Any]
    parameters: dict[str, str]
    pseudo_parameters: dict[str, Any]
    prefix: str
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    # Properties of emulated resources that the emulation does not apply (encryption, lifecycle rules, PITR...).
    ignored_properties: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Emulated types whose instance was not created, with why (a false Condition, an SNS subscription to a Lambda...).
    skipped: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, logical_id: str) -> Mapping[str, Any]:
        return self.attributes[logical_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.attributes)

    def __len__(self) -> int:
        return len(self.attributes)

    def ref(self, logical_id: str) -> Any:
        """What ``!Ref logical_id`` gives: a table name, queue URL, bucket name, topic ARN..."""
        return self.attributes[logical_id]["Ref"]

    def get_att(self, logical_id: str, attribute: str) -> Any:
        """What ``!GetAtt logical_id.attribute`` gives."""
        return self.attributes[logical_id][attribute]

    def resolve(self, value: Any, *, path: str = "") -> Any:
        """:func:`resolve` against these resources and their parameters."""
        return resolve(value, self, path=path)


class _Properties:
    """A resource's ``Properties``, each one resolved when first read, so properties an emulator does not use are
    never resolved (they may point at resources the local stack does not have)."""

    def __init__(self, raw: Mapping[str, Any], resources: LocalResources, path: str) -> None:
        self._raw = raw
        self._resources = resources
        self._path = path

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self._raw:
            return default
        return resolve(self._raw[name], self._resources, path=f"{self._path}.{name}")


@dataclass(frozen=True)
class _Emulator:
    service: str
    applied: frozenset[str]  # the Properties this emulation honours; the rest are reported as ignored
    # (client, physical name, properties, resources) -> attributes, or a str saying why nothing was created
    create: Callable[[Any, str, _Properties, LocalResources], dict[str, Any] | str]
    lowercase_name: bool = False


def _truthy(value: Any) -> bool:
    return value is True or _scalar_str(value).lower() == "true"


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _throughput(value: Mapping[str, Any]) -> dict[str, int]:
    return {key: int(value[key]) for key in ("ReadCapacityUnits", "WriteCapacityUnits")}


def _index(index: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
    if "ProvisionedThroughput" in index:
        spec["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
    return spec


def _create_table(client: Any, name: str, props: _Properties, _resources: LocalResources) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props.get("KeySchema"),
        "AttributeDefinitions": props.get("AttributeDefinitions"),
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        request["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [_index(index) for index in props.get("GlobalSecondaryIndexes")]
    if props.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [_index(index) for index in props.get("LocalSecondaryIndexes")]
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    try:
        table = client.create_table(**request)["TableDescription"]
    except ClientError as error:
        if _error_code(error) != "ResourceInUseException":
            raise
        table = client.describe_table(TableName=name)["Table"]  # a second run against the same emulator
    ttl = props.get("TimeToLiveSpecification")
    if ttl and _truthy(ttl.get("Enabled", False)):
        current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )
    attributes = {"Ref": name, "Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
    if table.get("TableId"):
        attributes["TableId"] = table["TableId"]
    return attributes


_QUEUE_ATTRIBUTES: Final = frozenset(
    {
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    }
)


def _queue_attribute(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)  # RedrivePolicy, RedriveAllowPolicy: JSON documents in the SQS API
    return _scalar_str(value)


def _create_queue(client: Any, name: str, props: _Properties, _resources: LocalResources) -> dict[str, Any]:
    attributes = {key: _queue_attribute(props.get(key)) for key in sorted(_QUEUE_ATTRIBUTES) if key in props}
    if _truthy(attributes.get("FifoQueue", False)) and not name.endswith(".fifo"):
        name += ".fifo"
    url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def _create_bucket(client: Any, name: str, _props: _Properties, resources: LocalResources) -> dict[str, Any]:
    region = resources.pseudo_parameters["AWS::Region"]
    request: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":  # the one region where S3 refuses an explicit LocationConstraint
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**request)
    except ClientError as error:
        if _error_code(error) != "BucketAlreadyOwnedByYou":
            raise
    partition = resources.pseudo_parameters["AWS::Partition"]
    suffix = resources.pseudo_parameters["AWS::URLSuffix"]
    return {
        "Ref": name,
        "Arn": f"arn:{partition}:s3:::{name}",
        "DomainName": f"{name}.s3.{suffix}",
        "RegionalDomainName": f"{name}.s3.{region}.{suffix}",
        "DualStackDomainName": f"{name}.s3.dualstack.{region}.{suffix}",
    }


def _create_topic(client: Any, name: str, props: _Properties, _resources: LocalResources) -> dict[str, Any]:
    attributes = {
        key: _scalar_str(props.get(key)) for key in ("FifoTopic", "ContentBasedDeduplication") if key in props
    }
    if _truthy(attributes.get("FifoTopic", False)) and not name.endswith(".fifo"):
        name += ".fifo"
    arn = client.create_topic(Name=name, Attributes=attributes)["TopicArn"]
    return {"Ref": arn, "TopicArn": arn, "TopicName": name}


def _create_subscription(
    client: Any, _name: str, props: _Properties, _resources: LocalResources
) -> dict[str, Any] | str:
    protocol = props.get("Protocol")
    if protocol != "sqs":
        return f"protocol {protocol!r}: only SNS -> SQS subscriptions are emulated"
    attributes = {
        key: _queue_attribute(props.get(key))
        for key in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy")
        if key in props
    }
    arn = client.subscribe(
        TopicArn=props.get("TopicArn"),
        Protocol="sqs",
        Endpoint=props.get("Endpoint"),
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return {"Ref": arn, "Arn": arn}


def _create_schedule_group(client: Any, name: str, _props: _Properties, _resources: LocalResources) -> dict[str, Any]:
    # moto stores schedules but never fires them; postroom.local.schedule_runner fires the due ones.
    try:
        arn = client.create_schedule_group(Name=name)["ScheduleGroupArn"]
    except ClientError as error:
        if _error_code(error) != "ConflictException":
            raise
        arn = client.get_schedule_group(Name=name)["Arn"]
    return {"Ref": name, "Arn": arn}


def _create_role(client: Any, name: str, props: _Properties, _resources: LocalResources) -> dict[str, Any]:
    # Only so that !GetAtt Role.Arn resolves (EventBridge Scheduler targets name a role); moto enforces no policy.
    trust = props.get("AssumeRolePolicyDocument") or {}
    try:
        role = client.create_role(RoleName=name[:64], AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    except ClientError as error:
        if _error_code(error) != "EntityAlreadyExists":
            raise
        role = client.get_role(RoleName=name[:64])["Role"]
    return {"Ref": role["RoleName"], "Arn": role["Arn"], "RoleId": role["RoleId"]}


def _create_configuration_set(client: Any, name: str, props: _Properties, _resources: LocalResources) -> dict[str, Any]:
    name = props.get("Name") or name
    try:
        client.create_configuration_set(ConfigurationSet={"Name": name})
    except ClientError as error:
        if _error_code(error) != "ConfigurationSetAlreadyExists":
            raise
    return {"Ref": name}


def _create_event_destination(
    client: Any, _name: str, props: _Properties, _resources: LocalResources
) -> dict[str, Any] | str:
    destination = props.get("EventDestination") or {}
    sns = destination.get("SnsDestination")
    if not sns:
        return "only SNS event destinations are emulated"
    config_set = props.get("ConfigurationSetName")
    name = destination.get("Name") or _name
    request = {
        "Name": name,
        "Enabled": _truthy(destination.get("Enabled", False)),
        "MatchingEventTypes": destination.get("MatchingEventTypes", []),
        "SNSDestination": {"TopicARN": sns["TopicARN"]},
    }
    try:
        client.create_configuration_set_event_destination(ConfigurationSetName=config_set, EventDestination=request)
    except ClientError as error:
        if _error_code(error) != "EventDestinationAlreadyExists":
            raise
    # moto stores the destination but never publishes to it; the local stack's SES event publisher reads these.
    return {
        "Ref": name,
        "ConfigurationSetName": config_set,
        "TopicArn": sns["TopicARN"],
        "MatchingEventTypes": list(request["MatchingEventTypes"]),
    }


def _create_secret(client: Any, name: str, props: _Properties, _resources: LocalResources) -> dict[str, Any]:
    import secrets as _random

    name = props.get("Name") or name
    value = props.get("SecretString")
    if value is None:
        generate = props.get("GenerateSecretString") or {}
        value = _random.token_urlsafe(int(generate.get("PasswordLength", 32)))[
            : int(generate.get("PasswordLength", 32))
        ]
    try:
        arn = client.create_secret(Name=name, SecretString=value, Description=props.get("Description", ""))["ARN"]
    except ClientError as error:
        if _error_code(error) != "ResourceExistsException":
            raise
        arn = client.describe_secret(SecretId=name)["ARN"]
    return {"Ref": arn, "Id": arn}


_EMULATORS: Final[Mapping[str, _Emulator]] = {
    "AWS::DynamoDB::Table": _Emulator(
        "dynamodb",
        frozenset(
            {
                "AttributeDefinitions",
                "BillingMode",
                "GlobalSecondaryIndexes",
                "KeySchema",
                "LocalSecondaryIndexes",
                "ProvisionedThroughput",
                "StreamSpecification",
                "TableName",
                "TimeToLiveSpecification",
            }
        ),
        _create_table,
    ),
    "AWS::SQS::Queue": _Emulator("sqs", _QUEUE_ATTRIBUTES | {"QueueName"}, _create_queue),
    "AWS::S3::Bucket": _Emulator("s3", frozenset({"BucketName"}), _create_bucket, lowercase_name=True),
    "AWS::SNS::Topic": _Emulator(
        "sns", frozenset({"ContentBasedDeduplication", "FifoTopic", "TopicName"}), _create_topic
    ),
    "AWS::SNS::Subscription": _Emulator(
        "sns",
        frozenset(
            {
                "Endpoint",
                "FilterPolicy",
                "FilterPolicyScope",
                "Protocol",
                "RawMessageDelivery",
                "RedrivePolicy",
                "TopicArn",
            }
        ),
        _create_subscription,
    ),
    "AWS::Scheduler::ScheduleGroup": _Emulator("scheduler", frozenset({"Name"}), _create_schedule_group),
    "AWS::IAM::Role": _Emulator("iam", frozenset({"AssumeRolePolicyDocument", "RoleName"}), _create_role),
    "AWS::SES::ConfigurationSet": _Emulator("ses", frozenset({"Name"}), _create_configuration_set),
    "AWS::SES::ConfigurationSetEventDestination": _Emulator(
        "ses", frozenset({"ConfigurationSetName", "EventDestination"}), _create_event_destination
    ),
    "AWS::SecretsManager::Secret": _Emulator(
        "secretsmanager",
        frozenset({"Name", "Description", "SecretString", "GenerateSecretString"}),
        _create_secret,
    ),
}

# The whole declared subset of resource types: anything else in a template is refused by check_supported.
SUPPORTED_RESOURCE_TYPES: Final = (
    frozenset(_EMULATORS) | frozenset(_HARNESS_TYPES) | _POLICY_TYPES | frozenset(_NOT_EMULATED_TYPES)
)


def check_supported(template: Mapping[str, Any]) -> None:
    """Refuse, with an :class:`UnsupportedTemplateError` naming the construct and where it is, a template that uses a
    resource type outside :data:`SUPPORTED_RESOURCE_TYPES` or an intrinsic outside :data:`SUPPORTED_INTRINSICS`.

    The whole template is checked, not only what the local stack reads today, so a construct the local stack would
    misread fails at start-up rather than as a wrong value in a function's environment later.
    """
    for logical_id, resource in (template.get("Resources") or {}).items():
        kind = resource.get("Type") if isinstance(resource, Mapping) else None
        if kind not in SUPPORTED_RESOURCE_TYPES:
            raise UnsupportedTemplateError(
                f"Resources.{logical_id}: resource type {kind} is outside the local stack's declared subset "
                "(declare it in postroom.local.template with how the local stack treats it)"
            )
    for section in ("Globals", "Conditions", "Resources", "Outputs"):
        _check_intrinsics(template.get(section), section)


def _check_intrinsics(value: Any, path: str) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_intrinsics(item, f"{path}[{i}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            # A one-key mapping whose key is Fn::* is an intrinsic call; Ref/Condition only count in that shape
            # (a resource's own Condition attribute and a policy's Condition block are not calls).
            if len(value) == 1 and isinstance(key, str) and key.startswith("Fn::") and key not in SUPPORTED_INTRINSICS:
                raise UnsupportedTemplateError(
                    f"{path}: intrinsic function {key} is outside the local stack's declared subset"
                )
            _check_intrinsics(item, f"{path}.{key}")


@dataclass(frozen=True)
class UnemulatedResource:
    logical_id: str
    type: str
    handled_by_harness: bool
    note: str


def unemulated_resources(template: Mapping[str, Any]) -> list[UnemulatedResource]:
    """Resources :func:`create_resources` does not create: the ones the local harness stands in for (functions, the
    API, the layer, log groups) and the ones nothing local emulates, so the harness can list them honestly."""
    listed = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        kind = str(resource.get("Type"))
        if kind in _EMULATORS:
            continue
        if kind in _HARNESS_TYPES:
            listed.append(UnemulatedResource(logical_id, kind, handled_by_harness=True, note=_HARNESS_TYPES[kind]))
        elif kind in _POLICY_TYPES:
            listed.append(UnemulatedResource(logical_id, kind, False, "not enforced locally: moto checks no policies"))
        elif kind in _NOT_EMULATED_TYPES:
            listed.append(UnemulatedResource(logical_id, kind, False, _NOT_EMULATED_TYPES[kind]))
        else:
            check_supported(template)  # raises, naming the type
    return listed


_PREFIX: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")


def create_resources(
    template: Mapping[str, Any],
    session: Session | ClientFactory | None = None,
    *,
    parameters: Mapping[str, str] | None = None,
    prefix: str = "postroom",
    endpoint_url: str | None = None,
    region: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> LocalResources:
    """Create the template's tables, queues, buckets, topics and SQS subscriptions in emulated AWS.

    Each is made from its own template properties, in dependency order (a dead-letter queue before the queue whose
    RedrivePolicy names its ARN), named ``f"{prefix}-{logical_id}"`` (lower-cased for buckets). Resources whose
    ``Condition`` is false are skipped, as CloudFormation skips them. Running it again against the same emulator
    reuses what exists.

    ``session`` is a boto3 Session (its clients use ``endpoint_url``, or the standard ``AWS_ENDPOINT_URL`` variables
    when that is None) or a ``service name -> client`` callable; None means a default Session. ``parameters`` override
    the template's defaults and are checked like CloudFormation checks them.
    """
    if _PREFIX.fullmatch(prefix) is None:
        raise TemplateError(f"prefix {prefix!r}: use 1-40 letters, digits and '-', starting with a letter or digit")
    check_supported(template)
    clients = _Clients(session, endpoint_url, region)
    local = LocalResources(
        template=template,
        parameters=effective_parameters(template, parameters),
        pseudo_parameters=_pseudo_parameters(clients.region, account_id, prefix),
        prefix=prefix,
    )
    declared: Mapping[str, Any] = template.get("Resources") or {}
    emulated = {}
    for logical_id, resource in declared.items():
        if resource.get("Type") not in _EMULATORS:
            continue
        condition = resource.get("Condition")
        if condition is not None and not resolve({"Fn::If": [condition, True, False]}, local):
            local.skipped[logical_id] = f"Condition {condition} is false"
            continue
        emulated[logical_id] = resource
    for logical_id in _creation_order(emulated):
        resource = emulated[logical_id]
        emulator = _EMULATORS[resource["Type"]]
        raw = resource.get("Properties") or {}
        name = f"{prefix}-{logical_id}"
        result = emulator.create(
            clients.get(emulator.service),
            name.lower() if emulator.lowercase_name else name,
            _Properties(raw, local, f"Resources.{logical_id}.Properties"),
            local,
        )
        if isinstance(result, str):
            local.skipped[logical_id] = result
            continue
        local.attributes[logical_id] = result
        local.types[logical_id] = resource["Type"]
        ignored = tuple(sorted(set(raw) - emulator.applied))
        if ignored:
            local.ignored_properties[logical_id] = ignored
    for logical_id, resource in declared.items():
        if resource.get("Type") == "AWS::Serverless::Api":
            # The local gateway serves every API, so an API's id is only a placeholder; it lets values built from it
            # (execute-api URLs in an environment) resolve. The local stack points such URLs at its gateway.
            local.attributes[logical_id] = {"Ref": f"{prefix}-{logical_id}".lower(), "RootResourceId": "local"}
    return local


class _Clients:
    """One client per service, from a Session (all in one region) or from the caller's factory."""

    def __init__(self, session: Session | ClientFactory | None, endpoint_url: str | None, region: str | None) -> None:
        if session is None:
            import boto3

            session = boto3.session.Session()
        self._cache: dict[str, Any] = {}
        make_client = getattr(session, "client", None)
        if callable(make_client):
            chosen = region or getattr(session, "region_name", None) or DEFAULT_REGION
            self._factory: ClientFactory = lambda service: make_client(
                service, endpoint_url=endpoint_url, region_name=chosen
            )
            self.region: str = chosen
        elif callable(session):
            self._factory = session
            # A factory's clients carry their region; the pseudo parameter AWS::Region must agree with it.
            self.region = region or self.get("sqs").meta.region_name or DEFAULT_REGION
        else:
            raise TypeError(f"expected a boto3 Session or a client factory, got {session!r}")

    def get(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = self._factory(service)
        return self._cache[service]


def _creation_order(resources: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Logical ids ordered so each comes after the resources its applied properties (or DependsOn) refer to."""
    dependencies: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        applied = _EMULATORS[resource["Type"]].applied
        props = {k: v for k, v in (resource.get("Properties") or {}).items() if k in applied}
        depends_on = resource.get("DependsOn", [])
        names = _references(props) | set([depends_on] if isinstance(depends_on, str) else depends_on)
        dependencies[logical_id] = {name for name in names if name in resources and name != logical_id}
    order: list[str] = []
    while len(order) < len(resources):
        ready = [lid for lid in resources if lid not in order and dependencies[lid] <= set(order)]
        if not ready:
            cycle = sorted(set(resources) - set(order))
            raise TemplateError(f"Resources: circular references between {', '.join(cycle)}")
        order.extend(ready)
    return order


def _references(value: Any) -> set[str]:
    """Logical ids (and parameter names) a value refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" and isinstance(argument, str):
                return {argument}
            if key == "Fn::GetAtt":
                return {argument.partition(".")[0] if isinstance(argument, str) else str(argument[0])}
            if key == "Fn::Sub":
                pair = isinstance(argument, list) and len(argument) == 2
                text, variables = (argument[0], argument[1]) if pair else (argument, {})
                names = {match.group(1).split(".", 1)[0] for match in _SUB_VARIABLE.finditer(str(text))}
                return {name for name in names if not name.startswith("!") and name not in variables} | _references(
                    variables
                )
        for item in value.values():
            found |= _references(item)
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Functions and their event sources
# ---------------------------------------------------------------------------------------------------------------------


def _function_resource(template: Mapping[str, Any], logical_id: str) -> Mapping[str, Any]:
    resource = (template.get("Resources") or {}).get(logical_id)
    if resource is None or resource.get("Type") != _SERVERLESS_FUNCTION:
        raise TemplateError(f"Resources.{logical_id}: not an {_SERVERLESS_FUNCTION}")
    return resource.get("Properties") or {}


# SAM needs an S3 location for code; a local path is carried through translation as the key under this bucket
# (what `sam local` does with its own placeholder), and read back from the translated function's Code.
_LOCAL_CODE_BUCKET: Final = "postroom-local-code"


def translate(template: Mapping[str, Any]) -> dict[str, Any]:
    """The SAM template as plain CloudFormation, expanded by SAM's own translator (``samtranslator``): Globals
    merged into each function, events turned into event source mappings, permissions and API definitions, with SAM's
    defaults - so the local stack reads functions the way SAM deploys them instead of re-implementing the transform.

    Parameters are left as ``Ref``s (the local stack resolves them with its own values); a template without the SAM
    transform is returned as it is.
    """
    key = json.dumps(template, sort_keys=True, default=str)
    translated: dict[str, Any] = json.loads(_translate(key))
    return translated  # a copy each time: callers may not mutate the cached translation


@lru_cache(maxsize=8)
def _translate(template_json: str) -> str:
    # Imported here: samtranslator takes about a second to import, and only the local stack needs it.
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = json.loads(template_json)
    if "AWS::Serverless-2016-10-31" not in str(template.get("Transform", "")):
        return template_json
    for resource in (template.get("Resources") or {}).values():
        props = resource.get("Properties") or {}
        for uri in ("CodeUri", "ContentUri"):
            if isinstance(props.get(uri), str) and not props[uri].startswith("s3://"):
                props[uri] = f"s3://{_LOCAL_CODE_BUCKET}/{props[uri]}"
    # The session only tells SAM the region (for ARNs it builds); no AWS call is made. No managed policy names are
    # looked up either: the local stack enforces no IAM policy.
    session = boto3.session.Session(region_name=DEFAULT_REGION)
    try:
        translated = Translator(None, Parser(), boto_session=session).translate(
            template, parameter_values={}, get_managed_policy_map=dict
        )
    except InvalidDocumentException as exc:
        problems = "; ".join(str(error) for error in exc.causes)
        raise TemplateError(f"SAM cannot translate the template: {problems}") from exc
    return json.dumps(translated, default=str)


def _lambda_function(template: Mapping[str, Any], logical_id: str) -> Mapping[str, Any]:
    _function_resource(template, logical_id)  # only the template's own Serverless functions are run locally
    resource = translate(template)["Resources"].get(logical_id) or {}
    return resource.get("Properties") or {}


def _static(value: Any, template: Mapping[str, Any], path: str) -> Any:
    """A value that may use parameters (at their defaults) and pseudo parameters, but no resources."""
    return resolve(value, {}, template=template, path=path)


@dataclass(frozen=True)
class FunctionSpec:
    """What the harness needs to run a function like Lambda would (Globals.Function merged in)."""

    logical_id: str
    code_uri: str
    handler: str
    runtime: str | None
    timeout: int
    memory_size: int


def function_spec(template: Mapping[str, Any], logical_id: str) -> FunctionSpec:
    """CodeUri, Handler, Runtime, Timeout and MemorySize of a function, as SAM translates it (Globals.Function and
    SAM's defaults applied)."""
    props = _lambda_function(template, logical_id)
    path = f"Resources.{logical_id}.Properties"
    code = props.get("Code") or {}
    handler = _static(props.get("Handler"), template, f"{path}.Handler")
    if code.get("S3Bucket") != _LOCAL_CODE_BUCKET or not isinstance(handler, str):
        raise TemplateError(f"{path}: the local stack runs functions with a local CodeUri directory and a Handler")
    return FunctionSpec(
        logical_id=logical_id,
        code_uri=str(code["S3Key"]),
        handler=handler,
        runtime=_static(props.get("Runtime"), template, f"{path}.Runtime"),
        timeout=int(_static(props.get("Timeout", 3), template, f"{path}.Timeout")),  # Lambda's defaults
        memory_size=int(_static(props.get("MemorySize", 128), template, f"{path}.MemorySize")),
    )


def function_environment(
    template: Mapping[str, Any],
    logical_id: str,
    resources: Mapping[str, Mapping[str, Any]],
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The function's environment variables as SAM translates them (``Globals.Function.Environment.Variables``
    overlaid with its own), resolved against the created ``resources`` and ``parameters`` (over the defaults)."""
    props = _lambda_function(template, logical_id)
    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    environment: dict[str, str] = {}
    for name, value in variables.items():
        where = f"Resources.{logical_id}.Properties.Environment.Variables.{name}"
        resolved = resolve(value, resources, parameters, template=template, path=where)
        if resolved is None and value is not None:
            continue  # AWS::NoValue
        environment[name] = "" if resolved is None else _string(resolved, where)
    return environment


def _events(template: Mapping[str, Any], kind: str) -> Iterator[tuple[str, str, Mapping[str, Any], FunctionSpec]]:
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != _SERVERLESS_FUNCTION:
            continue
        events = (resource.get("Properties") or {}).get("Events") or {}
        for event_id, event in events.items():
            if event.get("Type") == kind:
                yield logical_id, event_id, event.get("Properties") or {}, function_spec(template, logical_id)


_PATH_PARAMETER: Final = re.compile(r"\{([^{}+]+)(\+?)\}")


@lru_cache(maxsize=256)
def _compile_path(path: str) -> tuple[re.Pattern[str], tuple[str, ...], tuple[int, ...]]:
    """``/v1/messages/{id}`` -> (regex, parameter names, per-segment rank: 0 literal, 1 parameter, 2 greedy)."""
    pattern, names, ranks = "", [], []
    segments = [segment for segment in path.strip("/").split("/") if segment]
    for position, segment in enumerate(segments):
        parameter = _PATH_PARAMETER.fullmatch(segment)
        if parameter is None:
            pattern += "/" + re.escape(segment)
            ranks.append(0)
        elif parameter.group(2):
            if position != len(segments) - 1:
                raise TemplateError(f"path {path}: a greedy {{{parameter.group(1)}+}} must be the last segment")
            pattern += "/(.+)"
            names.append(parameter.group(1))
            ranks.append(2)
        else:
            pattern += "/([^/]+)"
            names.append(parameter.group(1))
            ranks.append(1)
    return re.compile(pattern or "/"), tuple(names), tuple(ranks)


@dataclass(frozen=True)
class Route:
    """One ``Type: Api`` event of a function: ``method`` is upper case, ``ANY`` matches every method."""

    function_logical_id: str
    method: str
    path: str
    code_uri: str
    handler: str

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters if this route serves ``method path`` (``/v1/messages/msg_1`` -> ``{"id": "msg_1"}``)."""
        if self.method not in ("ANY", method.upper()):
            return None
        regex, names, _ = _compile_path(self.path)
        found = regex.fullmatch(_normalise_path(path))
        if found is None:
            return None
        return dict(zip(names, found.groups(), strict=True))

    @property
    def specificity(self) -> tuple[tuple[int, ...], bool]:
        """Sort key, most specific first: literal segments before {parameters} before {greedy+}, then a named
        method before ANY - the precedence API Gateway applies."""
        return _compile_path(self.path)[2], self.method == "ANY"


def _normalise_path(path: str) -> str:
    """Query string dropped, one leading slash, no trailing slash - as API Gateway matches resources."""
    return "/" + path.split("?", 1)[0].strip("/")


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route API Gateway would pick for ``method path``, with its path parameters; None if no route matches."""
    candidates = []
    for route in routes:
        parameters = route.match(method, path)
        if parameters is not None:
            candidates.append((route.specificity, route, parameters))
    if not candidates:
        return None
    _, route, parameters = min(candidates, key=lambda candidate: candidate[0])
    return route, parameters


def api_routes(template: Mapping[str, Any]) -> list[Route]:
    """Every ``Type: Api`` event of every ``AWS::Serverless::Function``, in template order."""
    routes = []
    for logical_id, event_id, props, spec in _events(template, "Api"):
        path = f"Resources.{logical_id}.Properties.Events.{event_id}.Properties"
        route_path = _static(props.get("Path"), template, f"{path}.Path")
        method = _static(props.get("Method"), template, f"{path}.Method")
        if not isinstance(route_path, str) or not isinstance(method, str):
            raise TemplateError(f"{path}: an Api event needs a Path and a Method")
        _compile_path(route_path)  # reject malformed paths now rather than on the first request
        routes.append(Route(logical_id, method.upper(), route_path, spec.code_uri, spec.handler))
    return routes


@dataclass(frozen=True)
class SqsSource:
    """One ``Type: SQS`` event of a function, with the event source mapping settings the local poller honours."""

    function_logical_id: str
    queue_logical_id: str
    batch_size: int
    batching_window_ms: int
    report_batch_item_failures: bool
    code_uri: str
    handler: str
    maximum_concurrency: int | None = None


def sqs_event_sources(template: Mapping[str, Any]) -> list[SqsSource]:
    """Every enabled SQS event source mapping SAM makes from the ``Type: SQS`` events of the template's
    ``AWS::Serverless::Function``s; the queue must be a template queue (``!GetAtt Queue.Arn``)."""
    declared: Mapping[str, Any] = template.get("Resources") or {}
    sources = []
    for mapping_id, resource in translate(template)["Resources"].items():
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource.get("Properties") or {}
        path = f"Resources.{mapping_id}.Properties"
        function = props.get("FunctionName")
        logical_id = function.get("Ref") if isinstance(function, dict) else None
        if not isinstance(logical_id, str) or declared.get(logical_id, {}).get("Type") != _SERVERLESS_FUNCTION:
            continue  # a mapping for a function the local harness does not run
        if not _truthy(_static(props.get("Enabled", True), template, f"{path}.Enabled")):
            continue
        getatt = (props.get("EventSourceArn") or {}).get("Fn::GetAtt")
        queue_id = (getatt.partition(".")[0] if isinstance(getatt, str) else getatt[0]) if getatt else None
        if queue_id is None or declared.get(queue_id, {}).get("Type") != "AWS::SQS::Queue":
            raise TemplateError(f"{path}.EventSourceArn: the local poller needs !GetAtt <a queue in this template>.Arn")
        spec = function_spec(template, logical_id)
        response_types = _static(props.get("FunctionResponseTypes", []), template, f"{path}.FunctionResponseTypes")
        scaling = _static(props.get("ScalingConfig") or {}, template, f"{path}.ScalingConfig")
        window = _static(props.get("MaximumBatchingWindowInSeconds", 0), template, f"{path}.MaximumBatchingWindow")
        sources.append(
            SqsSource(
                function_logical_id=logical_id,
                queue_logical_id=queue_id,
                batch_size=int(_static(props.get("BatchSize", 10), template, f"{path}.BatchSize")),
                batching_window_ms=1000 * int(window),
                report_batch_item_failures="ReportBatchItemFailures" in response_types,
                code_uri=spec.code_uri,
                handler=spec.handler,
                maximum_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
            )
        )
    # Template order (SAM emits its resources in its own order): the first source is the first function's first event.
    functions = list(declared)
    return sorted(sources, key=lambda source: functions.index(source.function_logical_id))
