"""A builder that fails when its build action can reach the network.

//tests/e2e_targets:network_probe_export uses it to show that the export action runs without
network: under --spawn_strategy=linux-sandbox (the action carries `block-network`) it
succeeds; under a strategy that leaves the network open it fails with "network
reachable". tests/e2e/reproducible_test.sh runs both.
"""

import socket

import keras

# Hosts every machine that installs rules_keras must reach (PyPI, Debian's archive).
PROBES = (("pypi.org", 443), ("deb.debian.org", 80))


def reachable() -> list[str]:
    found = []
    for host, port in PROBES:
        try:
            with socket.create_connection((host, port), timeout=5):
                found.append(f"{host}:{port}")
        except OSError:
            pass
    return found


def build() -> keras.Model:
    found = reachable()
    if found:
        raise RuntimeError(
            f"network reachable from the export action: connected to {', '.join(found)}"
        )
    inputs = keras.Input(shape=(2,), name="x")
    return keras.Model(
        inputs, keras.layers.Dense(1, name="y")(inputs), name="network_probe"
    )
