"""docker-compose.yml, checked without a Docker engine: the services fit together
and their commands are ones this product accepts. tests/test_cluster.py runs the
same topology (head, worker node, driver with --address, PostgreSQL) as local processes."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from db.urls import parse_url
from study.cli import build_parser
from study.spec import load_spec

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR:-default} and ${VAR:?error}, as Compose would with the variables `env` set."""
    env = env or {}
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1), m.group(2)), text)

    def required(match: re.Match) -> str:
        if match.group(1) not in env:
            raise KeyError(f"compose would refuse to start without {match.group(1)}")
        return env[match.group(1)]

    return re.sub(r"\$\{(\w+):\?[^}]*\}", required, text)


SECRETS = {"POSTGRES_PASSWORD": "s3cret", "RAY_AUTH_TOKEN": "token"}


def test_the_five_services(compose):
    assert set(compose["services"]) == {"postgres", "ray-head", "ray-worker", "optuna-dashboard", "driver"}


def test_ray_nodes_join_the_head_and_workers_get_a_gpu(compose):
    services = compose["services"]
    head = services["ray-head"]["command"]
    port = re.search(r"--port=(\d+)", head).group(1)
    assert "--head" in head and "--block" in head
    for name in ("ray-worker", "driver"):
        assert f"--address=ray-head:{port}" in services[name]["command"]
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "--num-gpus=1" in services["ray-worker"]["command"]


def test_every_ray_process_shares_one_auth_token(compose):
    services = compose["services"]
    tokens = {services[name]["environment"]["RAY_AUTH_TOKEN"] for name in ("ray-head", "ray-worker", "driver")}
    modes = {services[name]["environment"]["RAY_AUTH_MODE"] for name in ("ray-head", "ray-worker", "driver")}
    assert len(tokens) == 1 and tokens.pop().startswith("${RAY_AUTH_TOKEN:?") and modes == {"token"}


def test_driver_and_dashboard_use_the_compose_postgres(compose):
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    for name in ("driver", "optuna-dashboard"):
        url = parse_url(interpolate(services[name]["environment"]["GNS_STORAGE"], SECRETS))
        assert url.get_backend_name() == "postgresql" and url.host == "postgres" and url.password == "s3cret"
        assert url.username == postgres["POSTGRES_USER"] and url.database == postgres["POSTGRES_DB"]
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_driver_runs_gns_launch_on_an_example_spec(compose):
    driver = compose["services"]["driver"]
    command = driver["command"]
    launch = re.search(r"gns (launch [^;]*)", command).group(1)
    argv = [interpolate(arg, SECRETS) for arg in shlex.split(launch.replace("$$", "$"))]
    spec = interpolate(driver["environment"]["SPEC"], SECRETS)
    argv = [spec if arg == "$SPEC" else arg for arg in argv]
    args = build_parser().parse_args(argv)  # the flags exist
    assert args.command == "launch" and args.address == "auto"
    assert load_spec(ROOT / args.spec).study  # the spec is valid


def test_dashboard_serves_the_storage_url(compose):
    dashboard = compose["services"]["optuna-dashboard"]
    assert "optuna-dashboard" in dashboard["command"] and "$$GNS_STORAGE" in dashboard["command"]


def published(compose, env) -> dict[str, str]:
    """Container port -> the host address it is published on, for every service."""
    ports = {}
    for service in compose["services"].values():
        for mapping in service.get("ports", []):
            host, _, container = interpolate(mapping, env).rpartition(":")
            ports[container] = host.rpartition(":")[0] if host.count(":") else ""
    return ports


def test_published_ports_stay_on_loopback_unless_asked(compose):
    ports = published(compose, SECRETS)
    assert set(ports) == {"5432", "8080"}
    assert set(ports.values()) == {"127.0.0.1"}  # an empty host would mean every interface
    assert set(published(compose, {**SECRETS, "GNS_PUBLISH_HOST": "0.0.0.0"}).values()) == {"0.0.0.0"}


def test_there_is_no_default_password(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD" in text
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"])
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(compose["services"]["driver"]["environment"]["GNS_STORAGE"], {"RAY_AUTH_TOKEN": "t"})
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^POSTGRES_PASSWORD=$", example, re.M) and re.search(r"^RAY_AUTH_TOKEN=$", example, re.M)


def test_the_image_installs_the_pinned_project(compose):
    assert compose["services"]["ray-head"]["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    extras = re.search(r'pip install .*-c constraints\.txt "\.\[([a-z,]+)\]"', dockerfile).group(1).split(",")
    assert set(extras) >= {"postgres", "dashboard", "report", "digits"}  # every service's needs
    for package in ("study", "workers", "db", "records"):  # every package of the distribution is copied in
        assert re.search(rf"^COPY {package} {package}$", dockerfile, re.M), package
    images = {service.get("image") for service in compose["services"].values()} - {"postgres:15"}
    assert images == {"gradnorm-study:latest"}
