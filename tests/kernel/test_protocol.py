"""The plugin's side of the CNI protocol -- versions, result shapes, error codes."""

import json

import pytest

from tests.kernel import networks

VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


@pytest.mark.parametrize("version", VERSIONS)
def test_result_has_the_shape_of_the_requested_version(lab, version):
    conflist = lab.network(networks.DUAL_STACK, cni_version=version)
    pod = lab.pod("p")
    result = lab.add(conflist, pod)
    assert result["cniVersion"] == version
    sandbox = result["interfaces"][2]
    assert sandbox["name"] == "eth0" and sandbox["sandbox"] == pod.netns
    assert len(sandbox["mac"].split(":")) == 6 and sandbox["mac"] != "00:00:00:00:00:00"
    versions = [ip.get("version") for ip in result["ips"]]
    if version.startswith("0."):
        assert versions == ["4", "6"]
    else:
        assert versions == [None, None]
    assert all(ip["interface"] == 2 for ip in result["ips"])


def test_version_lists_every_supported_version(lab):
    status, reply = lab.plugin('{"cniVersion": "1.1.0"}', {"CNI_COMMAND": "VERSION"})
    assert status == 0
    assert reply == {"cniVersion": "1.1.0", "supportedVersions": VERSIONS}


def _config(lab) -> dict:
    document = json.loads(lab.network(networks.BRIDGE).read_text())
    return {
        **document["plugins"][0],
        "name": document["name"],
        "cniVersion": document["cniVersion"],
    }


def _environment(pod, **changes) -> dict[str, str]:
    base = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": pod.container_id,
        "CNI_NETNS": pod.netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"CNI_CONTAINERID": None}, 4, "CNI_CONTAINERID"),
        ({"CNI_NETNS": None}, 4, "CNI_NETNS"),
        ({"CNI_IFNAME": "a/b"}, 4, "CNI_IFNAME"),
        ({"CNI_IFNAME": "sixteen-bytes-xx"}, 4, "CNI_IFNAME"),
        ({"CNI_CONTAINERID": "-bad id"}, 4, "CNI_CONTAINERID"),
        ({"CNI_NETNS": "relative/path"}, 4, "absolute"),
        ({"CNI_NETNS": "/run/netns/does-not-exist-netc"}, 4, "does-not-exist-netc"),
        ({"CNI_COMMAND": "FROB"}, 4, "FROB"),
    ],
)
def test_bad_environment_is_refused_with_code_4(lab, changes, code, words):
    pod = lab.pod("p")
    status, error = lab.plugin(json.dumps(_config(lab)), _environment(pod, **changes))
    assert status == 1
    assert error["code"] == code
    assert words in error["msg"]


def test_the_plugins_own_namespace_is_never_taken_for_a_pod(lab):
    pod = lab.pod("p")
    own = f"/run/netns/{lab.node}"
    status, error = lab.plugin(json.dumps(_config(lab)), _environment(pod, CNI_NETNS=own))
    assert (status, error["code"]) == (1, 4)
    assert "own network namespace" in error["msg"]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda c: "{not json", 6),
        (lambda c: "[1, 2]", 6),
        (lambda c: json.dumps({**c, "cniVersion": "9.9.9"}), 1),
        (lambda c: json.dumps({k: v for k, v in c.items() if k != "netc"}), 7),
        (lambda c: json.dumps({**c, "name": "other"}), 7),
        (lambda c: json.dumps({**c, "netc": {**c["netc"], "format": 99}}), 7),
        (
            lambda c: json.dumps(
                {
                    **c,
                    "netc": {**c["netc"], "network": {**c["netc"]["network"], "name": "tampered"}},
                }
            ),
            7,
        ),
        (lambda c: json.dumps({**c, "runtimeConfig": {"portMappings": "all"}}), 7),
        # a prevResult on ADD: netc-cni was put after another plugin, whose result it would drop
        (
            lambda c: json.dumps(
                {**c, "prevResult": {"cniVersion": "1.0.0", "interfaces": [], "ips": []}}
            ),
            7,
        ),
    ],
)
def test_bad_configuration_is_refused_with_the_right_code(lab, mutate, code):
    pod = lab.pod("p")
    status, error = lab.plugin(mutate(_config(lab)), _environment(pod))
    assert status == 1
    assert error["code"] == code
    assert error["msg"]
    assert "eth0" not in lab.run(pod.name, "ip", "-o", "link").stdout


def test_errors_are_the_only_thing_on_stdout(lab):
    pod = lab.pod("p")
    done = lab.run(
        lab.node,
        "env",
        *(f"{k}={v}" for k, v in _environment(pod, CNI_IFNAME="a:b").items()),
        str(lab.bin_dir / "netc-cni"),
        check=False,
        stdin=json.dumps(_config(lab)),
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["code"] == 4
    assert "netc-cni: ADD" in done.stderr


def test_check_is_refused_below_0_4_0(lab):
    pod = lab.pod("p")
    config = {**_config(lab), "cniVersion": "0.3.1"}
    lab.add(lab.network(networks.BRIDGE, cni_version="0.3.1"), pod)
    status, error = lab.plugin(json.dumps(config), _environment(pod, CNI_COMMAND="CHECK"))
    assert (status, error["code"]) == (1, 1)


@pytest.mark.parametrize(
    "previous",
    ["not a result", {"ips": "all"}, {"ips": [{"address": "10.77.0.2"}, {"address": 7}]}],
)
def test_a_malformed_prev_result_fails_check_with_code_7_and_del_still_removes_all(lab, previous):
    pod = lab.pod("p")
    lab.add(lab.network(networks.BRIDGE), pod)
    config = json.dumps({**_config(lab), "prevResult": previous})
    status, error = lab.plugin(config, _environment(pod, CNI_COMMAND="CHECK"))
    assert (status, error["code"]) == (1, 7), error
    assert "prevResult" in error["msg"]
    status, error = lab.plugin(config, _environment(pod, CNI_COMMAND="DEL"))
    assert (status, error) == (0, None)
    assert "eth0" not in lab.run(pod.name, "ip", "-o", "link").stdout


def test_runtime_config_keys_match_whatever_their_case(lab):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    document = json.loads(conflist.read_text())
    config = {
        **document["plugins"][0],
        "name": "labnet",
        "cniVersion": "1.0.0",
        "runtimeConfig": {
            "PortMappings": [
                {"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}
            ],
            "Bandwidth": {"IngressRate": 8000000, "IngressBurst": 4294967295},
        },
    }
    status, result = lab.plugin(json.dumps(config), _environment(pod))
    assert status == 0, result
    nat = lab.run(lab.node, "iptables-save", "-t", "nat").stdout
    assert "--dport 8080" in nat
    qdiscs = lab.run(lab.node, "tc", "qdisc", "show", "dev", result["interfaces"][1]["name"])
    assert "tbf" in qdiscs.stdout and "8Mbit" in qdiscs.stdout
