#!/usr/bin/python3
"""Small real SMTP server for integration tests (Debian python3-aiosmtpd 1.4.x).

Run with /usr/bin/python3 (Debian's interpreter, which can import aiosmtpd):

    smtp_server.py --make-cert DIR            # writes DIR/{ca,cert,key}.pem, exits
    smtp_server.py --port N --tls starttls --cert C --key K \
        --user U --password P --maildir M --ready-file F [--reject-rcpt ADDR]...

Every accepted message is stored as M/<n>.eml (raw bytes as received) plus
M/<n>.json (envelope metadata); n starts at 000001. The listening port is
written to --ready-file once the server accepts connections. SIGTERM/SIGINT
stop the server cleanly (exit status 0).
"""
import argparse
import hmac
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def log(msg):
    print(f"smtp_server[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def write_atomic(path, data):
    """Write bytes to path via a temporary name + rename (never half-written)."""
    tmp = path + ".tmp"  # does not end in .eml/.json, so globbing skips it
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def make_cert(out_dir):
    """Create a tiny CA (ca.pem) and a leaf for localhost/127.0.0.1 signed by it
    (cert.pem, key.pem). webpki/rustls reject a CA:TRUE cert as the server's
    end-entity cert, hence the two-level chain."""
    os.makedirs(out_dir, exist_ok=True)
    p = lambda name: os.path.join(out_dir, name)
    run = lambda *cmd: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=smtp-test-ca", "-keyout", p("ca-key.pem"), "-out", p("ca.pem"),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
        "-subj", "/CN=localhost", "-keyout", p("key.pem"), "-out", p("leaf.csr"))
    with tempfile.NamedTemporaryFile("w", suffix=".ext") as ext:
        ext.write("basicConstraints=critical,CA:FALSE\n"
                  "keyUsage=critical,digitalSignature,keyEncipherment\n"
                  "extendedKeyUsage=serverAuth\n"
                  "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                  "subjectKeyIdentifier=hash\n"
                  "authorityKeyIdentifier=keyid,issuer\n")
        ext.flush()
        run("openssl", "x509", "-req", "-in", p("leaf.csr"), "-days", "2",
            "-CA", p("ca.pem"), "-CAkey", p("ca-key.pem"), "-CAcreateserial",
            "-extfile", ext.name, "-out", p("cert.pem"))
    for leftover in ("leaf.csr", "ca.srl"):
        if os.path.exists(p(leftover)):
            os.remove(p(leftover))
    for name in ("ca.pem", "cert.pem", "key.pem"):
        print(os.path.abspath(p(name)))


class Handler:
    """aiosmtpd hooks: refuse selected recipients, store accepted mail."""

    def __init__(self, maildir, reject):
        self.maildir = maildir
        self.reject = {a.lower() for a in reject}
        # Continue numbering after any messages already in the directory.
        names = os.listdir(maildir) if maildir else []
        self.count = max([int(n[:-4]) for n in names
                          if n.endswith(".eml") and n[:-4].isdigit()] + [0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            log(f"rejecting RCPT {address}")
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        # After STARTTLS server.transport is the TLS transport; for implicit
        # TLS it is TLS from the start. session.ssl is only set by STARTTLS.
        tls = (server.transport.get_extra_info("ssl_object") is not None
               or session.ssl is not None)
        user = None
        if session.authenticated and session.auth_data is not None:
            user = session.auth_data.login.decode("utf-8", "replace")
        self.count += 1
        name = f"{self.count:06d}"
        if self.maildir:
            meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                    "auth_user": user, "tls": tls}
            base = os.path.join(self.maildir, name)
            # Sidecar first, so it exists whenever the .eml is visible.
            write_atomic(base + ".json", json.dumps(meta).encode() + b"\n")
            write_atomic(base + ".eml", raw)
        log(f"accepted message {name} from {envelope.mail_from} to "
            f"{envelope.rcpt_tos} ({len(raw)} bytes, tls={tls}, user={user})")
        return f"250 2.0.0 OK queued as {name}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--tls", choices=["starttls", "implicit", "none"], default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--maildir")
    ap.add_argument("--reject-rcpt", action="append", default=[])
    ap.add_argument("--ready-file")
    ap.add_argument("--make-cert", metavar="DIR")
    args = ap.parse_args()

    if args.make_cert:
        return make_cert(args.make_cert)
    if not args.port:
        ap.error("--port N (non-zero) is required")
    if args.tls != "none" and not (args.cert and args.key):
        ap.error("--cert and --key are required for --tls " + args.tls)
    if (args.user is None) != (args.password is None):
        ap.error("--user and --password go together")
    if args.maildir:
        os.makedirs(args.maildir, exist_ok=True)
    # Quiet aiosmtpd's per-connection chatter (deprecation notes, the
    # "AUTH without TLS" warning); session errors/tracebacks still show.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="aiosmtpd")

    kwargs = {}
    if args.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # server side
        ctx.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        else:
            kwargs.update(ssl_context=ctx)
    if args.user is not None:
        user, password = args.user.encode(), args.password.encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            # auth_data is LoginPassword(login: bytes, password: bytes) for
            # both PLAIN and LOGIN; returning it makes it session.auth_data.
            ok = (hmac.compare_digest(auth_data.login, user)
                  and hmac.compare_digest(auth_data.password, password))
            log(f"AUTH {mechanism} {auth_data.login!r}: {'ok' if ok else 'refused'}")
            if ok:
                return AuthResult(success=True, auth_data=auth_data)
            # handled defaults to True ("reply already sent"): without
            # handled=False aiosmtpd sends nothing and the client hangs.
            return AuthResult(success=False, handled=False)  # -> 535 5.7.8

        kwargs.update(authenticator=authenticator, auth_required=True)
    # aiosmtpd only counts STARTTLS as "TLS" for auth_require_tls, so with
    # credentials, implicit TLS (and plain mode, by request) must allow AUTH
    # without STARTTLS. Without --user, AUTH stays unadvertised there.
    kwargs["auth_require_tls"] = args.user is None or args.tls == "starttls"

    # Block the stop signals before the server thread starts (it inherits the
    # mask), then wait for them synchronously in the main thread.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    controller = Controller(Handler(args.maildir, args.reject_rcpt),
                            hostname=args.host, port=args.port,
                            server_hostname="localhost", **kwargs)
    controller.start()  # returns once listening (makes one probe connection)
    log(f"listening on {args.host}:{args.port} tls={args.tls} "
        f"auth={'required' if args.user is not None else 'off'}")
    if args.ready_file:
        write_atomic(args.ready_file, f"{args.port}\n".encode())

    sig = signal.sigwait(stop_signals)
    log(f"got {signal.Signals(sig).name}, stopping")
    controller.stop()
    log("stopped")


if __name__ == "__main__":
    sys.exit(main())
