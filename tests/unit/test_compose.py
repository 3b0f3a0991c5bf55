"""docker-compose.yml cannot run here (no image registry): check it parses and mounts what exists."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_compose_parses_and_every_mounted_path_exists():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"asterisk", "callflow"}
    named_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        build = service["build"]
        assert (REPO / build["context"]).is_dir(), name
        assert (REPO / build["context"] / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in named_volumes, f"{name}: unknown named volume {source}"


def test_no_default_password_in_compose():
    text = (REPO / "docker-compose.yml").read_text()
    assert "CALLFLOW_ARI_PASSWORD: ${CALLFLOW_ARI_PASSWORD:?" in text
    assert "CALLFLOW_SIP_PASSWORD: ${CALLFLOW_SIP_PASSWORD:?" in text


def test_the_images_copy_files_that_exist():
    for dockerfile in (REPO / "Dockerfile", REPO / "asterisk/Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for src in line.split()[1:-1]:
                    assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src}"
