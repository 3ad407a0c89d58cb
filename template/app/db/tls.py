"""TLS to PostgreSQL with the server's certificate verified (RUN-2, docs/CONTRACTS.md).

RDS presents a certificate signed by its regional root CA (`rds-ca-rsa2048-g1`, set on the instance
by Terraform). libpq's `sslmode=verify-full` checks that the chain ends at a root of
`sslrootcert` and that the certificate names the host the URL connects to; `require` would encrypt
but accept anyone's certificate, so a spoofed endpoint would get the password.
"""

from pathlib import Path

from sqlalchemy import make_url

# Where the image puts the RDS CA bundle it downloaded and checked by SHA-256 (Dockerfile).
RDS_CA_BUNDLE = Path("/opt/rds/global-bundle.pem")


def with_verified_tls(database_url: str, root_cert: Path) -> str:
    """The URL with libpq told to verify the server against `root_cert`.

    Set in the URL's query, the options reach every connection: the RUN-2 handler that reads a
    rotated password from DATABASE_URL_FILE replaces the credentials and the host, never these, so a
    URL file cannot turn verification off.
    """
    url = make_url(database_url).update_query_dict({"sslmode": "verify-full", "sslrootcert": str(root_cert)})
    return url.render_as_string(hide_password=False)
