# SPDX-License-Identifier: MIT
"""The command line and the configuration check (-t)."""

import re
import subprocess

import pytest

from conftest import to_yaml


def run_lowat(lowat_bin, *args, cwd=None, timeout=20):
    return subprocess.run([str(lowat_bin), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=cwd, timeout=timeout, text=True)


def test_cli_version(lowat_bin):
    p = run_lowat(lowat_bin, "--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "lowat 0.1.0"


def test_cli_help(lowat_bin):
    p = run_lowat(lowat_bin, "--help")
    assert p.returncode == 0, p.stderr
    assert "usage" in p.stdout.lower()
    assert "-c" in p.stdout and "-t" in p.stdout


def test_cli_unknown_option_usage_exit_2(lowat_bin):
    p = run_lowat(lowat_bin, "--no-such-option")
    assert p.returncode == 2
    assert "usage" in p.stderr.lower()
    assert p.stdout == ""


def test_cli_check_embedded_default_ok(lowat_bin, tmp_path):
    p = run_lowat(lowat_bin, "-t", cwd=tmp_path)
    assert (p.returncode, p.stdout.strip()) == (0, "OK"), p.stderr


def test_cli_check_full_config_ok(lowat_bin, tmp_path, copy_certs):
    """Every key of the documented schema, in both short and long forms, passes the check."""
    d = copy_certs(tmp_path)
    cfg = {
        "workers": 2,
        "log": {"level": "info", "access": str(tmp_path / "access.log")},
        "drain_timeout": "10s",
        "limits": {"max_header_bytes": "64k", "max_headers": 100, "max_concurrent_streams": 100,
                   "client_idle_timeout": "60s", "client_header_timeout": "10s", "max_buffered_bytes": "64k"},
        "listeners": [
            {"address": "127.0.0.1:0", "tls": True},
            {"address": "127.0.0.1:0", "tls": {"certificates": [{"cert": "a.pem", "key": "a.key"},
                                                                {"cert": "b.pem", "key": "b.key"}],
                                               "session_tickets": True, "ticket_rotation": "1h"}},
            {"address": "127.0.0.1:0"},
        ],
        "backends": [
            {"name": "app", "members": ["127.0.0.1:8080", {"address": "localhost:8081", "weight": 2}],
             "max_connections": 128, "queue": 1024, "connect_timeout": "3s", "response_timeout": "60s",
             "idle_timeout": "30s", "resolve_interval": "30s", "max_fails": 3, "fail_backoff": "10s",
             "retries": 2},
            {"name": "api", "members": ["127.0.0.1:8082"]},
        ],
        "routes": [{"host": "*.example.com", "path": "/api/", "backend": "api"},
                   {"path": "/", "backend": "app"}],
    }
    path = d / "full.yaml"
    path.write_text(to_yaml(cfg) + "\n")
    p = run_lowat(lowat_bin, "-t", "-c", str(path), cwd="/")
    assert (p.returncode, p.stdout.strip()) == (0, "OK"), p.stderr


def test_cli_check_reports_every_error_with_file_line_col(lowat_bin, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "workers: 1\n"                                   # 1
        "drain_timeout: tenseconds\n"                    # 2: not a duration
        "listeners:\n"                                   # 3
        "  - address: 127.0.0.1:0\n"                     # 4
        "backends:\n"                                    # 5
        "  - name: app\n"                                # 6
        "    members: [127.0.0.1:99999]\n"               # 7: port out of range
        "routes:\n"                                      # 8
        "  - {path: /, backend: nosuch}\n")              # 9: no such backend
    p = run_lowat(lowat_bin, "-t", "-c", str(path))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "OK" not in p.stdout
    rx = re.compile(r"^" + re.escape(str(path)) + r":(\d+):(\d+): \S.*$", re.M)
    found = {int(m.group(1)) for m in rx.finditer(p.stderr)}
    assert {2, 7, 9} <= found, p.stderr
    assert all(int(m.group(2)) >= 1 for m in rx.finditer(p.stderr))


def test_cli_check_yaml_syntax_error(lowat_bin, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("workers: 1\nlisteners: [ {address: 127.0.0.1:0\nbackends: x\n")
    p = run_lowat(lowat_bin, "-t", "-c", str(path))
    assert p.returncode == 1
    assert re.search(r"^" + re.escape(str(path)) + r":\d+:\d+: ", p.stderr, re.M), p.stderr


def test_cli_check_missing_file(lowat_bin, tmp_path):
    path = tmp_path / "nope.yaml"
    p = run_lowat(lowat_bin, "-t", "-c", str(path))
    assert p.returncode == 1
    assert str(path) in p.stderr


def test_cli_run_bad_config_exits_nonzero(lowat_bin, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("workers: 1\nlisteners:\n  - address: 127.0.0.1:0\nbackends:\n  - name: app\n"
                    "    members: [127.0.0.1:8080]\n    retries: lots\n")
    p = run_lowat(lowat_bin, "-c", str(path))
    assert p.returncode != 0
    assert re.search(r"^" + re.escape(str(path)) + r":7:\d+: ", p.stderr, re.M), p.stderr


def _one_tls_listener_config(cert, key, log):
    return {"workers": 1, "log": log,
            "listeners": [{"address": "127.0.0.1:0",
                           "tls": {"certificates": [{"cert": str(cert), "key": str(key)}]}}],
            "backends": [{"name": "app", "members": ["127.0.0.1:8080"]}]}


@pytest.mark.parametrize("case", ["key_of_another_cert", "cert_not_pem", "access_log_dir_missing",
                                  "error_log_is_dir"])
def test_cli_check_refuses_what_a_start_refuses(lowat_bin, certs, tmp_path, case):
    """-t builds the TLS contexts and looks at the log files as a start does, so a config that
    cannot start fails the check too, with the start's message."""
    cert, key = certs["a_cert"], certs["a_key"]
    log = {"level": "info", "access": "off"}
    if case == "key_of_another_cert":
        key, want = certs["b_key"], "private key does not match the certificate"
    elif case == "cert_not_pem":
        cert = tmp_path / "garbage.pem"
        cert.write_text("not a certificate\n")
        want = "cannot load certificate chain"
    elif case == "access_log_dir_missing":
        log["access"] = str(tmp_path / "nosuchdir" / "access.log")
        want = f"cannot open {log['access']}: No such file or directory"
    else:
        log["error"] = str(tmp_path)
        want = f"cannot open {tmp_path}: Is a directory"
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(_one_tls_listener_config(cert, key, log)) + "\n")
    start = run_lowat(lowat_bin, "-c", str(path))
    assert start.returncode == 1 and want in start.stderr, start.stderr
    p = run_lowat(lowat_bin, "-t", "-c", str(path))
    assert (p.returncode, p.stdout) == (1, ""), f"-t said {p.stdout.strip()!r} to a config that cannot start"
    assert want in p.stderr, p.stderr


def test_cli_check_creates_no_log_file(lowat_bin, certs, tmp_path):
    """A start creates missing log files; the check only looks whether it could."""
    log = {"level": "info", "access": str(tmp_path / "access.log"), "error": str(tmp_path / "error.log")}
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(_one_tls_listener_config(certs["a_cert"], certs["a_key"], log)) + "\n")
    p = run_lowat(lowat_bin, "-t", "-c", str(path))
    assert (p.returncode, p.stdout.strip(), p.stderr) == (0, "OK", ""), p.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == ["c.yaml"]
