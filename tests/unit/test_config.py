from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from broker.settings import (
    BrokerConfig,
    ConfigError,
    ConfigProblem,
    load_config,
    parse_config,
    split_host_port,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"

SERVER = """
[server]
tls_cert = "pki/server.crt"
tls_key = "pki/server.key"
client_ca = "pki/ca.crt"
"""
CLUSTER = """
[[clusters]]
name = "dev"
kubeconfig = "kubeconfig.yaml"
"""
ROLE = """
[[roles]]
name = "deployer"
service_account = "deployer"
namespaces = ["staging"]
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    err = exc.value
    # One line per problem, each naming the file; no traceback or pydantic boilerplate.
    lines = str(err).splitlines()
    assert len(lines) == len(err.problems)
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "Traceback" not in str(err)
    assert "errors.pydantic.dev" not in str(err)
    assert "validation error" not in str(err)
    return err


def keys(err: ConfigError) -> list[str]:
    return [p.where for p in err.problems]


# -- the example ------------------------------------------------------------------------------------------------


def test_example_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert [c.name for c in cfg.clusters] == ["dev"]
    assert cfg.clusters[0].kubeconfig == REPO / "kubeconfig.yaml"
    assert cfg.server.tls_cert == REPO / "pki/server.crt"
    assert cfg.server.client_ca == REPO / "pki/ca.crt"
    roles = {r.name: r for r in cfg.roles}
    assert set(roles) == {"deployer", "reader", "legacy-robot"}
    deployer = roles["deployer"]
    assert deployer.mode == "token-request"
    assert deployer.revocable
    assert deployer.namespaces == ("staging", "ci-*")
    assert deployer.default_ttl == 900
    assert deployer.max_ttl == 3600
    assert deployer.cluster == "dev"
    assert dict(deployer.service_account_labels) == {"team": "platform"}
    assert roles["legacy-robot"].mode == "legacy-secret"
    assert roles["reader"].namespace_selector == "team=platform"
    grants = {g.name: g for g in cfg.grants}
    assert grants["ci-deploys"].groups == ("ci",)
    assert grants["ci-deploys"].max_ttl == 1800
    assert grants["alice"].users == ("alice",)
    assert grants["alice"].roles == ("*",)
    assert cfg.auth.mtls.enabled
    assert cfg.auth.api_keys[0].name == "jenkins"
    assert cfg.auth.api_keys[0].groups == ("ci",)


def test_example_copied_resolves_paths_against_its_own_directory(tmp_path: Path) -> None:
    copy = tmp_path / "etc" / "broker.toml"
    copy.parent.mkdir()
    shutil.copy(EXAMPLE, copy)
    cfg = load_config(str(copy))
    assert cfg.server.tls_key == tmp_path / "etc" / "pki" / "server.key"
    assert cfg.clusters[0].kubeconfig == tmp_path / "etc" / "kubeconfig.yaml"


def test_example_api_key_digest_matches_documented_command() -> None:
    import hashlib

    assert load_config(EXAMPLE).auth.api_keys[0].sha256 == hashlib.sha256(b"test").hexdigest()


# -- defaults and resolution ------------------------------------------------------------------------------------


def test_minimal_config_defaults(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, SERVER + CLUSTER + ROLE + '[[grants]]\ngroups = ["ci"]\nroles = ["*"]\n')
    )
    assert cfg.server.listen == "127.0.0.1:8443"
    assert cfg.server.metrics_listen == "127.0.0.1:9090"
    assert cfg.server.max_body_bytes == 65536
    assert cfg.server.shutdown_grace_seconds == 10
    assert cfg.server.tls_reload_interval_seconds == 30
    assert cfg.clusters[0].request_timeout_seconds == 10
    assert cfg.clusters[0].issuer is None
    role = cfg.roles[0]
    assert role.cluster == "dev"  # the only cluster
    assert role.cluster_name == "dev"
    assert role.create_service_account
    assert (role.default_ttl, role.max_ttl) == (3600, 3600)
    assert role.mode == "token-request"
    assert not role.revocable
    assert role.default_audiences == ()
    assert role.allowed_audiences == ()
    assert cfg.grants[0].name == "grant-0"
    assert cfg.grants[0].namespaces == ("*",)
    assert cfg.grants[0].max_ttl is None
    assert cfg.auth.mtls.enabled  # client_ca is set
    assert cfg.cluster("dev") is cfg.clusters[0]
    assert cfg.cluster("nope") is None


def test_unnamed_grants_are_named_by_index(tmp_path: Path) -> None:
    text = SERVER + CLUSTER + ROLE
    text += '[[grants]]\nname = "first"\nusers = ["a"]\nroles = ["deployer"]\n'
    text += '[[grants]]\nusers = ["b"]\nroles = ["deployer"]\n'
    cfg = load_config(write(tmp_path, text))
    assert [g.name for g in cfg.grants] == ["first", "grant-1"]


def test_mtls_defaults_off_without_client_ca(tmp_path: Path) -> None:
    server = '[server]\ntls_cert = "c"\ntls_key = "k"\n'
    key = '[[auth.api_keys]]\nname = "jenkins"\nsha256 = "' + "AB" * 32 + '"\n'
    cfg = load_config(write(tmp_path, server + CLUSTER + key))
    assert not cfg.auth.mtls.enabled
    assert cfg.auth.api_keys[0].sha256 == "ab" * 32  # normalised to lower case


def test_mtls_can_be_disabled_with_client_ca(tmp_path: Path) -> None:
    key = '[[auth.api_keys]]\nname = "k"\nsha256 = "' + "0" * 64 + '"\n'
    cfg = load_config(write(tmp_path, SERVER + CLUSTER + "[auth.mtls]\nenabled = false\n" + key))
    assert not cfg.auth.mtls.enabled


def test_absolute_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = '[server]\ntls_cert = "/etc/tls/c.pem"\ntls_key = "~/k.pem"\nclient_ca = "../ca.pem"\n' + CLUSTER
    cfg = load_config(write(tmp_path, text))
    assert cfg.server.tls_cert == Path("/etc/tls/c.pem")
    assert cfg.server.tls_key == tmp_path / "home" / "k.pem"
    assert cfg.server.client_ca == tmp_path.parent / "ca.pem"


def test_durations_in_any_form(tmp_path: Path) -> None:
    role = ROLE + 'default_ttl = 900\nmax_ttl = "1h30m"\n'
    cfg = load_config(write(tmp_path, SERVER + CLUSTER + role))
    assert (cfg.roles[0].default_ttl, cfg.roles[0].max_ttl) == (900, 5400)


def test_revocable_role_may_have_short_ttls(tmp_path: Path) -> None:
    role = ROLE + 'revocable = true\ndefault_ttl = "2m"\nmax_ttl = "5m"\n'
    cfg = load_config(write(tmp_path, SERVER + CLUSTER + role))
    assert (cfg.roles[0].default_ttl, cfg.roles[0].max_ttl) == (120, 300)


def test_legacy_role_ignores_ttls(tmp_path: Path) -> None:
    role = ROLE + 'mode = "legacy-secret"\ndefault_ttl = "1m"\nmax_ttl = "10s"\n'
    cfg = load_config(write(tmp_path, SERVER + CLUSTER + role))
    assert cfg.roles[0].mode == "legacy-secret"


def test_two_clusters_roles_name_theirs(tmp_path: Path) -> None:
    clusters = CLUSTER + '[[clusters]]\nname = "prod"\nin_cluster = true\n'
    cfg = load_config(write(tmp_path, SERVER + clusters + ROLE + 'cluster = "prod"\n'))
    assert cfg.roles[0].cluster == "prod"
    assert cfg.clusters[1].in_cluster


def test_ipv6_listen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, SERVER + 'listen = "[::1]:8443"\n' + CLUSTER))
    assert split_host_port(cfg.server.listen) == ("::1", 8443)
    assert split_host_port("0.0.0.0:0") == ("0.0.0.0", 0)
    for bad in ["8443", "host:", "host:99999", "a b:1", "[::1]"]:
        with pytest.raises(ValueError):
            split_host_port(bad)


def test_models_are_frozen(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLE)
    with pytest.raises(ValidationError):
        cfg.roles[0].max_ttl = 5
    with pytest.raises(ValidationError):
        cfg.server = cfg.server
    with pytest.raises(TypeError):
        cfg.roles[0].service_account_labels["x"] = "y"  # type: ignore[index]
    assert isinstance(cfg.roles, tuple)
    assert cfg.roles[0].model_dump()["service_account_labels"] == {"team": "platform"}


def test_model_validate_without_file_keeps_relative_paths() -> None:
    cfg = BrokerConfig.model_validate(
        {
            "server": {"tls_cert": "c", "tls_key": "k", "client_ca": "ca"},
            "clusters": [{"name": "dev", "in_cluster": True}],
            "roles": [{"name": "r", "service_account": "sa", "namespaces": ["x"]}],
        }
    )
    assert cfg.server.tls_cert == Path("c")
    assert cfg.roles[0].cluster == "dev"


# -- errors: one line each, naming the file and the key -----------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: config file not found"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path}: ")
    assert "\n" not in str(exc.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"[server]\nx = '\xff'\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "UTF-8" in str(exc.value)


def test_bad_toml_names_line_and_column(tmp_path: Path) -> None:
    err = problems(tmp_path, "[server]\ntls_cert = = 3\n")
    assert err.problems == (ConfigProblem("line 2, column 12", "invalid TOML: Invalid value"),)


def test_duplicate_table_is_toml_error(tmp_path: Path) -> None:
    err = problems(tmp_path, SERVER + "[server]\n")
    assert "invalid TOML" in str(err)


def test_wrong_type(tmp_path: Path) -> None:
    err = problems(tmp_path, SERVER + 'max_body_bytes = "64k"\n' + CLUSTER)
    assert keys(err) == ["server.max_body_bytes"]
    assert "expected an integer" in str(err)
    assert "'64k'" in str(err)


@pytest.mark.parametrize(
    ("line", "key", "words"),
    [
        ("revocable = 1", "roles[0].revocable", "expected true or false"),
        ('namespaces = "staging"', "roles[0].namespaces", "expected a list"),
        ("namespaces = []", "roles[0].namespaces", "at least 1 entry"),
        ('mode = "legacy"', "roles[0].mode", "'token-request' or 'legacy-secret'"),
        ('service_account = "Deployer"', "roles[0].service_account", "DNS-1123"),
        ('namespaces = ["ok", "-bad"]', "roles[0].namespaces[1]", "cannot match"),
        ('namespaces = ["CI_*"]', "roles[0].namespaces[0]", "may contain only"),
        ('namespace_selector = "team in ()"', "roles[0].namespace_selector", "at least one value"),
        ('namespace_selector = "a > 3"', "roles[0].namespace_selector", "not supported"),
        ('service_account_labels = { "no spaces" = "x" }', "roles[0].service_account_labels", "label key"),
        ('service_account_labels = { "a" = "-x" }', "roles[0].service_account_labels", "label value"),
        ('default_ttl = "15x"', "roles[0].default_ttl", "Go duration"),
        ("max_ttl = 0", "roles[0].max_ttl", "positive"),
        ('max_ttl = "500ms"', "roles[0].max_ttl", "whole number of seconds"),
        ("max_ttl = true", "roles[0].max_ttl", "duration"),
        ('default_audiences = [""]', "roles[0].default_audiences[0]", "audience"),
        ('cluster = "prod"', "roles[0].cluster", "unknown cluster 'prod'"),
        ("typo_key = 1", "roles[0].typo_key", "unknown key"),
    ],
)
def test_role_field_errors(tmp_path: Path, line: str, key: str, words: str) -> None:
    text = SERVER + CLUSTER + ROLE.replace('namespaces = ["staging"]\n', "") + line + "\n"
    if "namespaces" not in line:
        text += 'namespaces = ["staging"]\n'
    if line.startswith("service_account ="):
        text = text.replace('service_account = "deployer"\n', "", 1)
    err = problems(tmp_path, text)
    assert keys(err) == [key], str(err)
    assert words in str(err)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['default_ttl = "2h"', 'max_ttl = "1h"'], [("roles[0].default_ttl", "exceeds max_ttl (1h)")]),
        (
            ['default_ttl = "5m"', 'max_ttl = "9m"'],
            [("roles[0].default_ttl", "10m minimum"), ("roles[0].max_ttl", "10m minimum")],
        ),
        (['mode = "legacy-secret"', "revocable = true"], [("roles[0].revocable", "token-request roles")]),
        (
            ['mode = "legacy-secret"', 'allowed_audiences = ["vault"]'],
            [("roles[0].allowed_audiences", "no audience")],
        ),
    ],
)
def test_role_consistency_errors(tmp_path: Path, lines: list[str], expected: list[tuple[str, str]]) -> None:
    err = problems(tmp_path, SERVER + CLUSTER + ROLE + "\n".join(lines) + "\n")
    assert [(p.where,) for p in err.problems] == [(k,) for k, _ in expected]
    for problem, (_key, words) in zip(err.problems, expected, strict=True):
        assert words in problem.message


def test_unknown_top_level_and_section_keys(tmp_path: Path) -> None:
    err = problems(tmp_path, SERVER + 'lisen = "0.0.0.0:1"\n' + CLUSTER + '[auditing]\npath = "x"\n')
    assert sorted(keys(err)) == ["auditing", "server.lisen"]
    assert all("unknown key" in p.message for p in err.problems)


def test_missing_required_keys(tmp_path: Path) -> None:
    err = problems(tmp_path, '[server]\ntls_cert = "c"\n')
    assert sorted(keys(err)) == ["clusters", "server.tls_key"]
    assert all(p.message == "required key is missing" for p in err.problems)


def test_no_clusters(tmp_path: Path) -> None:
    err = problems(tmp_path, SERVER)
    assert [(p.where, p.message) for p in err.problems] == [("clusters", "required key is missing")]
    err = problems(tmp_path, "clusters = []\n" + SERVER)
    assert [(p.where, p.message) for p in err.problems] == [("clusters", "must have at least 1 entry")]


def test_nested_key_paths(tmp_path: Path) -> None:
    err = problems(tmp_path, SERVER + CLUSTER + ROLE + "service_account_labels = { team = 1 }\n")
    assert keys(err) == ["roles[0].service_account_labels.team"]
    assert "expected a string, got 1" in str(err)


def test_missing_cluster_with_two_clusters(tmp_path: Path) -> None:
    clusters = CLUSTER + '[[clusters]]\nname = "prod"\nin_cluster = true\n'
    err = problems(tmp_path, SERVER + clusters + ROLE)
    assert keys(err) == ["roles[0].cluster"]
    assert "2 clusters" in str(err)


@pytest.mark.parametrize(
    ("cluster", "key"),
    [
        ('name = "x"\nkubeconfig = "k"\nin_cluster = true\n', "clusters[0].in_cluster"),
        ('name = "x"\n', "clusters[0].kubeconfig"),
        ('name = "x"\nin_cluster = true\ncontext = "c"\n', "clusters[0].context"),
        ('name = "x"\nin_cluster = true\njwks_uri = "ftp://x"\n', "clusters[0].jwks_uri"),
        ('name = "x"\nin_cluster = true\nserver = "not a url"\n', "clusters[0].server"),
        (
            'name = "x"\nin_cluster = true\nrequest_timeout_seconds = 0\n',
            "clusters[0].request_timeout_seconds",
        ),
        ('name = "x"\nin_cluster = true\nissuer = "a b"\n', "clusters[0].issuer"),
        ('name = "X"\nin_cluster = true\n', "clusters[0].name"),
        ('name = "x"\nkubeconfig = ""\n', "clusters[0].kubeconfig"),
    ],
)
def test_cluster_errors(tmp_path: Path, cluster: str, key: str) -> None:
    err = problems(tmp_path, SERVER + "[[clusters]]\n" + cluster)
    assert keys(err) == [key], str(err)


def test_duplicate_names(tmp_path: Path) -> None:
    role = ROLE + 'cluster = "dev"\n'
    text = SERVER + CLUSTER + CLUSTER + role + role
    text += '[[grants]]\nname = "g"\nusers = ["a"]\nroles = ["*"]\n' * 2
    text += ('[[auth.api_keys]]\nname = "k"\nsha256 = "' + "1" * 64 + '"\n') * 2
    err = problems(tmp_path, text)
    assert keys(err) == [
        "clusters[1].name",
        "roles[1].name",
        "grants[1].name",
        "auth.api_keys[1].name",
        "auth.api_keys[1].sha256",
    ]


def test_grant_errors(tmp_path: Path) -> None:
    text = SERVER + CLUSTER + ROLE
    text += '[[grants]]\nusers = ["a"]\nroles = ["deployer", "nope"]\n'
    text += '[[grants]]\nroles = ["deployer"]\n'
    text += '[[grants]]\nusers = ["b"]\nroles = ["deployer"]\nmax_ttl = "5m"\n'
    text += '[[grants]]\nusers = ["c"]\nroles = []\n'
    text += '[[grants]]\nusers = ["c"]\nroles = ["Bad Name"]\nnamespaces = ["x_y"]\n'
    err = problems(tmp_path, text)
    # field-level problems first; cross-section ones appear once those are fixed
    assert keys(err) == [
        "grants[1].users",
        "grants[3].roles",
        "grants[4].roles[0]",
        "grants[4].namespaces[0]",
    ]
    fixed = text.replace('[[grants]]\nroles = ["deployer"]\n', "").replace(
        '[[grants]]\nusers = ["c"]\nroles = []\n[[grants]]\nusers = ["c"]\nroles = ["Bad Name"]\nnamespaces = ["x_y"]\n',
        "",
    )
    err = problems(tmp_path, fixed)
    assert keys(err) == ["grants[0].roles[1]", "grants[1].max_ttl"]
    assert "unknown role 'nope'" in str(err)
    assert "not revocable" in str(err)


def test_grant_with_blank_user(tmp_path: Path) -> None:
    err = problems(tmp_path, SERVER + CLUSTER + ROLE + '[[grants]]\nusers = [" a"]\nroles = ["*"]\n')
    assert keys(err) == ["grants[0].users[0]"]


def test_api_key_errors(tmp_path: Path) -> None:
    err = problems(tmp_path, SERVER + CLUSTER + '[[auth.api_keys]]\nname = "k"\nsha256 = "abc"\n')
    assert keys(err) == ["auth.api_keys[0].sha256"]
    assert "sha256sum" in str(err)


def test_mtls_needs_client_ca(tmp_path: Path) -> None:
    server = '[server]\ntls_cert = "c"\ntls_key = "k"\n'
    err = problems(tmp_path, server + CLUSTER + "[auth.mtls]\nenabled = true\n")
    assert keys(err) == ["auth.mtls.enabled"]
    err = problems(tmp_path, server + CLUSTER + '[auth.mtls]\nuser_from = "uid"\n')
    assert keys(err) == ["auth.mtls.user_from"]


def test_no_authentication_method(tmp_path: Path) -> None:
    err = problems(tmp_path, '[server]\ntls_cert = "c"\ntls_key = "k"\n' + CLUSTER)
    assert keys(err) == ["auth"]


def test_all_field_errors_reported_together(tmp_path: Path) -> None:
    text = SERVER + 'max_body_bytes = -1\nlisten = "nope"\n' + CLUSTER
    text += ROLE + 'max_ttl = "forever"\n' + ROLE.replace("deployer", "x") + "typo = 1\n"
    err = problems(tmp_path, text)
    assert keys(err) == ["server.listen", "server.max_body_bytes", "roles[0].max_ttl", "roles[1].typo"]


def test_parse_config_uses_given_path_for_messages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config("[server]\n", tmp_path / "virtual.toml")
    assert str(exc.value).startswith(f"{tmp_path / 'virtual.toml'}: ")


# -- robustness -------------------------------------------------------------------------------------------------

EXAMPLE_LINES = EXAMPLE.read_text(encoding="utf-8").splitlines()
SCALARS = st.sampled_from(['""', '"x"', "0", "-1", "1.5", "true", "[]", '["*"]', "{}", '"15x"', '"Bad Name"'])


@given(
    drop=st.sets(st.integers(min_value=0, max_value=len(EXAMPLE_LINES) - 1), max_size=3),
    replace=st.dictionaries(st.integers(min_value=0, max_value=len(EXAMPLE_LINES) - 1), SCALARS, max_size=3),
)
@settings(max_examples=150, deadline=None)
def test_mangled_example_only_raises_config_error(drop: set[int], replace: dict[int, str]) -> None:
    lines = []
    for i, line in enumerate(EXAMPLE_LINES):
        if i in drop:
            continue
        if i in replace and "=" in line and not line.startswith("#"):
            line = line.split("=", 1)[0] + "= " + replace[i]
        lines.append(line)
    try:
        parse_config("\n".join(lines), Path("/etc/broker/config.toml"))
    except ConfigError as err:
        assert err.problems
        assert all(line.startswith("/etc/broker/config.toml: ") for line in str(err).splitlines())
        assert len(str(err).splitlines()) == len(err.problems)


@given(st.text(max_size=200))
@settings(deadline=None)
def test_arbitrary_text_only_raises_config_error(text: str) -> None:
    try:
        parse_config(text, Path("c.toml"))
    except ConfigError as err:
        assert len(str(err).splitlines()) == len(err.problems)
