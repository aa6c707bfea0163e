"""An S3-compatible server on loopback for the backup tests: moto in server mode, with its
IAM checks on, a user allowed everything in S3, and one bucket.

Prints one JSON line (endpoint, bucket, access key id, secret access key) once it serves, then
serves until its standard input closes (the test that started it ended).
"""

import json
import os
import sys

# Requests after the first four (the set-up below) must be signed by a key moto issued and
# allowed by the user's policy, as on AWS: wrong credentials are refused.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

BUCKET = "dengine-backups"
ALLOW_S3 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
)


def main():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    setup = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="backups")
    key = iam.create_access_key(UserName="backups")["AccessKey"]
    iam.put_user_policy(UserName="backups", PolicyName="s3", PolicyDocument=ALLOW_S3)
    boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "bucket": BUCKET,
                "access_key_id": key["AccessKeyId"],
                "secret_access_key": key["SecretAccessKey"],
            }
        ),
        flush=True,
    )
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
