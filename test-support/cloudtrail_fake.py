"""A fake of AWS CloudTrail's LookupEvents for DriftGuard's tests.

moto's server does not implement CloudTrail's LookupEvents (moto/cloudtrail/responses.py has no
lookup_events), so the tests run this instead. It checks each request as AWS does, independently
of DriftGuard's signing code: the Authorization header's signature is computed again with
botocore's own SigV4Auth (botocore.auth) from the method, path, signed headers and body received,
with the known test secret, for service `cloudtrail` in the expected region, and compared. A
mismatch (a wrong secret, a changed body, another region or service) is answered 403
InvalidSignatureException, as AWS answers it.

A request that passes gets the canned events of the file given with --events (read again at each
request, so a test may add events while the server runs): those whose ResourceName is the
LookupAttributes' value, at or after StartTime, newest first, --page-size a page (at most
MaxResults), with a NextToken for the rest.

Every request is appended to --log (one JSON line: time, target, body, ok) so tests can count
them and check their spacing. The first line of standard output is `PORT <n>`.

Usage: python cloudtrail_fake.py --access-key AK --secret SK --region us-east-1 \
    --events events.json --log requests.jsonl [--page-size 2]
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--page-size", type=int, default=2)
    args = p.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status, kind, message):
            self.answer(status, {"__type": kind, "message": message})

        def log(self, body, ok, why=""):
            with open(args.log, "a") as f:
                f.write(json.dumps({
                    "time": time.time(),
                    "target": self.headers.get("X-Amz-Target"),
                    "body": body,
                    "ok": ok,
                    "why": why,
                }) + "\n")

        def signature_problem(self, raw):
            """None when the request is signed right, else what is wrong."""
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("AWS4-HMAC-SHA256 "):
                return "no SigV4 Authorization header"
            parts = dict(
                kv.strip().split("=", 1) for kv in auth[len("AWS4-HMAC-SHA256 "):].split(",")
            )
            scope = parts.get("Credential", "").split("/")
            if len(scope) != 5:
                return "bad credential scope"
            access_key, date, region, service, term = scope
            if access_key != args.access_key:
                return "unknown access key"
            if (region, service, term) != (args.region, "cloudtrail", "aws4_request"):
                return "credential scope %s/%s/%s" % (region, service, term)
            amz_date = self.headers.get("X-Amz-Date", "")
            if not amz_date.startswith(date):
                return "date and scope differ"
            signed = parts.get("SignedHeaders", "").split(";")
            for needed in ("host", "x-amz-date", "x-amz-target", "content-type"):
                if needed not in signed:
                    return "%s is not signed" % needed
            sent = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc)
            skew = abs((datetime.datetime.now(datetime.timezone.utc) - sent).total_seconds())
            if skew > 300:
                return "request time too skewed"
            headers = {h: self.headers.get(h) for h in signed}
            if any(v is None for v in headers.values()):
                return "a signed header is missing"
            host = self.headers.get("Host")
            request = AWSRequest(method=self.command, url="http://%s%s" % (host, self.path),
                                 data=raw, headers=headers)
            request.context["timestamp"] = amz_date
            token = self.headers.get("X-Amz-Security-Token")
            signer = SigV4Auth(Credentials(args.access_key, args.secret, token), "cloudtrail",
                               args.region)
            canonical = signer.canonical_request(request)
            expected = signer.signature(signer.string_to_sign(request, canonical), request)
            if ";".join(sorted(signed)) != signer.signed_headers(signer.headers_to_sign(request)):
                return "signed headers differ"
            if not hmac.compare_digest(expected, parts.get("Signature", "")):
                return "signature mismatch"
            declared = self.headers.get("X-Amz-Content-Sha256")
            if declared is not None and declared != hashlib.sha256(raw).hexdigest():
                return "content hash mismatch"
            return None

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = None
            problem = None
            if self.path != "/":
                problem = "path %s" % self.path
            elif self.headers.get("X-Amz-Target") != TARGET:
                problem = "target %s" % self.headers.get("X-Amz-Target")
            elif self.headers.get("Content-Type") != "application/x-amz-json-1.1":
                problem = "content type %s" % self.headers.get("Content-Type")
            if problem:
                self.log(body, False, problem)
                return self.error(400, "UnknownOperationException", problem)
            problem = self.signature_problem(raw)
            if problem:
                self.log(body, False, problem)
                return self.error(
                    403, "InvalidSignatureException",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method.")
            if not isinstance(body, dict):
                self.log(body, False, "not JSON")
                return self.error(400, "SerializationException", "not JSON")
            self.log(body, True)
            attrs = body.get("LookupAttributes") or []
            wanted = [a.get("AttributeValue") for a in attrs
                      if a.get("AttributeKey") == "ResourceName"]
            if len(attrs) != 1 or len(wanted) != 1:
                return self.error(400, "InvalidLookupAttributesException",
                                  "one ResourceName attribute is expected")
            start = body.get("StartTime", 0)
            with open(args.events) as f:
                events = json.load(f)
            found = [e for e in events
                     if e.get("ResourceName") == wanted[0] and e["EventTime"] >= start]
            found.sort(key=lambda e: e["EventTime"], reverse=True)
            offset = 0
            if body.get("NextToken"):
                try:
                    offset = int(base64.b64decode(body["NextToken"]).decode().split(":")[1])
                except (ValueError, IndexError):
                    return self.error(400, "InvalidNextTokenException", "bad token")
            size = min(args.page_size, int(body.get("MaxResults", 50)))
            page = found[offset:offset + size]
            out = {"Events": [{
                "EventId": e["EventId"],
                "EventName": e["EventName"],
                "ReadOnly": "true" if e.get("ReadOnly") else "false",
                "EventTime": e["EventTime"],
                "EventSource": e.get("EventSource", "ec2.amazonaws.com"),
                "Username": e.get("Username"),
                "Resources": [{"ResourceType": e.get("ResourceType", ""),
                               "ResourceName": e["ResourceName"]}],
                "CloudTrailEvent": json.dumps(e.get("CloudTrailEvent", {})),
            } for e in page]}
            if offset + size < len(found):
                out["NextToken"] = base64.b64encode(
                    ("off:%d" % (offset + size)).encode()).decode()
            self.answer(200, out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
