#!/usr/bin/env python3
"""Deploy infra/template.yaml into the local emulator and write the stack's
outputs to an env file that the mktg CLI and the tests read.

There is no second list of resources: what the template says is what exists.
Safe to re-run: an existing stack is updated (or left alone when unchanged).
"""
import argparse
import io
import re
import sys
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_FAILED",
          "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED"}

# Output key -> environment variable the code reads.
ENV_NAMES = {
    "TableName": "TABLE_NAME",
    "EventBusName": "EVENT_BUS_NAME",
    "DirectorQueueUrl": "DIRECTOR_QUEUE_URL",
    "AgentQueueUrl": "AGENT_QUEUE_URL",
    "ReviewQueueUrl": "REVIEW_QUEUE_URL",
    "ToolQueueUrl": "TOOL_QUEUE_URL",
    "DirectorDLQUrl": "DIRECTOR_DLQ_URL",
    "AgentDLQUrl": "AGENT_DLQ_URL",
    "ReviewDLQUrl": "REVIEW_DLQ_URL",
    "ToolDLQUrl": "TOOL_DLQ_URL",
}


def with_code_locations(body: str, bucket: str) -> str:
    """Point each function's `CodeUri: ..` (the repository root, for sam build) at the
    zip the deploy step uploads to the emulator's S3, s3://bucket/<binary>.zip.
    The SAM transform insists on an S3 location even for functions that the
    DeployFunctions condition leaves out."""
    out, binary = [], None
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith("Binary:"):
            binary = stripped.split(":", 1)[1].strip()
        if stripped in ("CodeUri: .", "CodeUri: ..") and binary:
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}CodeUri: s3://{bucket}/{binary}.zip"
            binary = None
        out.append(line)
    return "\n".join(out) + "\n"


def function_binaries(template: str) -> list:
    return re.findall(r"^\s*Binary:\s*(\S+)\s*$", template, flags=re.M)


def package(binary: Path, root: Path) -> bytes:
    """A Lambda zip: the binary as `bootstrap` (executable), plus config/ and
    skills/, which every function loads at cold start."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary.read_bytes())
        for sub in ("config", "skills"):
            for f in sorted((root / sub).rglob("*")):
                if not f.is_file():
                    continue
                if f.relative_to(root).as_posix() == "config/tools.yaml":
                    z.writestr("config/tools.yaml", local_tools_yaml(f.read_text(), root))
                else:
                    z.write(f, f.relative_to(root).as_posix())
    return buf.getvalue()


def local_tools_yaml(text: str, root: Path) -> str:
    """The emulator runs each function as a process on this machine, so a
    stdio tool server installed under .mktg/ is reachable by its absolute
    path; the package carries that path instead of the relative one. (In
    AWS, tool servers are url: endpoints or ship inside the package.)"""
    return re.sub(r"^(\s*command:\s*)(\.mktg/\S+)\s*$",
                  lambda m: f"{m.group(1)}{(root / m.group(2)).as_posix()}",
                  text, flags=re.M)


def upload_functions(args, template: str) -> int:
    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name=args.region,
                      aws_access_key_id="test", aws_secret_access_key="test")
    try:
        s3.create_bucket(Bucket=args.code_bucket)
    except ClientError as e:
        if "BucketAlready" not in str(e):
            raise
    root = Path(args.template).resolve().parent.parent
    for name in function_binaries(template):
        binary = Path(args.bin_dir) / name
        if not binary.is_file():
            print(f"error: {binary} is missing; build it first (cargo build -p {name})", file=sys.stderr)
            return 1
        data = package(binary, root)
        s3.put_object(Bucket=args.code_bucket, Key=f"{name}.zip", Body=data)
        print(f"uploaded {name}.zip ({len(data) / 1e6:.1f} MB)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--stack", default="mktg")
    ap.add_argument("--template", default="infra/template.yaml")
    ap.add_argument("--env-file", default=".mktg/emulator.env")
    ap.add_argument("--with-functions", action="store_true",
                    help="also deploy the Lambda functions (needs built code)")
    ap.add_argument("--code-bucket", default="mktg-artifacts")
    ap.add_argument("--bin-dir", default="target/debug",
                    help="where the function binaries are (with --with-functions)")
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a template parameter (repeatable)")
    args = ap.parse_args()

    cfn = boto3.client(
        "cloudformation", endpoint_url=args.endpoint, region_name=args.region,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=60),
    )
    raw = Path(args.template).read_text()
    body = with_code_locations(raw, args.code_bucket)
    if args.with_functions:
        rc = upload_functions(args, raw)
        if rc:
            return rc
    params = [{"ParameterKey": "DeployFunctions",
               "ParameterValue": "true" if args.with_functions else "false"}]
    for p in args.param:
        key, sep, value = p.partition("=")
        if not sep or not key:
            print(f"--param {p!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        params.append({"ParameterKey": key, "ParameterValue": value})
    caps = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    try:
        exists = True
        try:
            cfn.describe_stacks(StackName=args.stack)
        except ClientError as e:
            if "does not exist" not in str(e):
                raise
            exists = False
        if exists:
            try:
                cfn.update_stack(StackName=args.stack, TemplateBody=body, Parameters=params, Capabilities=caps)
                print(f"updating stack {args.stack} from {args.template}")
            except ClientError as e:
                if "No updates are to be performed" not in str(e):
                    raise
                print(f"stack {args.stack} is up to date")
        else:
            cfn.create_stack(StackName=args.stack, TemplateBody=body, Parameters=params, Capabilities=caps)
            print(f"creating stack {args.stack} from {args.template}")
    except EndpointConnectionError:
        print(f"error: cannot reach the emulator at {args.endpoint}", file=sys.stderr)
        return 2
    except ClientError as e:
        print(f"error: CloudFormation refused {args.template}: {e}", file=sys.stderr)
        return 1

    deadline = time.monotonic() + args.timeout
    while True:
        stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
        status = stack["StackStatus"]
        if status in DONE:
            break
        if status in FAILED:
            events = cfn.describe_stack_events(StackName=args.stack)["StackEvents"]
            reasons = [f"  {e.get('LogicalResourceId')}: {e.get('ResourceStatusReason')}"
                       for e in events if "FAILED" in e.get("ResourceStatus", "")]
            print(f"error: stack {args.stack} ended {status}:\n" + "\n".join(reasons[:10]), file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print(f"error: stack {args.stack} still {status} after {args.timeout}s", file=sys.stderr)
            return 1
        time.sleep(0.5)

    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [k for k in ENV_NAMES if k not in outputs]
    if missing:
        print(f"error: stack outputs lack {', '.join(missing)}", file=sys.stderr)
        return 1
    lines = [
        "# Written by localstack/up from the stack's outputs; do not edit or commit.",
        f"AWS_ENDPOINT_URL={args.endpoint}",
        f"AWS_REGION={args.region}",
        "AWS_ACCESS_KEY_ID=test",
        "AWS_SECRET_ACCESS_KEY=test",
        f"MKTG_STACK={args.stack}",
    ] + [f"{ENV_NAMES[k]}={outputs[k]}" for k in ENV_NAMES]
    env_file = Path(args.env_file)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("\n".join(lines) + "\n")
    print(f"stack {args.stack}: {status}; {len(outputs)} outputs written to {env_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
