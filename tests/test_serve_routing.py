"""The routing decision without any backend: what a request's ``model`` names, the policy's
ranking, knobs, turns, stickiness, calibration at startup and config mistakes found when the
routers load. Routers are real, trained on a small RoutingData and saved as `codyn train` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codyn.bench.local import STRONG, WEAK
from codyn.deploy import PolicySetup
from codyn.deploy import route as deploy_route
from codyn.errors import DataError
from codyn.serve.config import load_config
from codyn.serve.routing import BadModelSpec, Gateway, UnknownModel, routed_text
from tests.serve_support import CHAT, CODE, model_entry, router_dir, routing_data, write_config

MODELS = {
    WEAK: model_entry("http://127.0.0.1:9/v1", 0.1, 0.2),
    STRONG: model_entry("http://127.0.0.1:9/v1", 1.0, 2.0),
}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    folder = tmp_path_factory.mktemp("routing")
    knn = router_dir(folder / "knn", "knn", featuriser="tfidf", k=3)
    val = folder / "val.parquet"
    routing_data().save(val)
    config = write_config(
        folder,
        models=MODELS,
        routes={
            "code": {"router": str(knn), "knob": 0.5, "sticky": True},
            "sbs": {"router": str(router_dir(folder / "sbs"))},
            "pair": {"router": str(knn), "policy": "threshold", "strong": STRONG, "weak": WEAK},
            "cheap": {"router": str(knn), "calibrate": {"data": str(val), "strong_share": 0.0}},
            "two-turns": {"router": str(knn), "knob": 0.5, "turns": 2},
        },
    )
    return Gateway(load_config(config))


def test_learned_route_sends_code_to_strong_and_chat_to_weak(gateway: Gateway) -> None:
    code = gateway.decide("code", user("Write a Python function that checks for primes."))
    chat = gateway.decide("code", user("Say hello to my friend."))
    assert code.ranking == [STRONG, WEAK] and code.route == "code" and code.knob == 0.5
    assert chat.ranking == [WEAK, STRONG]
    assert code.predicted is not None and code.predicted[STRONG] > code.predicted[WEAK]
    assert 0 <= code.decision_ms < 1000


def test_knob_in_the_model_name_overrides_the_routes(gateway: Gateway) -> None:
    prompt = user("Write a Python function that checks for primes.")
    assert gateway.decide("codyn/code:5", prompt).ranking[0] == WEAK
    assert gateway.decide("codyn/code:0", prompt).ranking[0] == STRONG
    assert gateway.decide("codyn/code", prompt).knob == 0.5
    with pytest.raises(BadModelSpec, match="must be a number"):
        gateway.decide("codyn/code:lots", prompt)


def test_catalog_models_pass_through_and_unknown_names_are_refused(gateway: Gateway) -> None:
    decision = gateway.decide(WEAK, user("hi"))
    assert decision.route == "passthrough" and decision.ranking == [WEAK]
    assert decision.predicted is None
    with pytest.raises(UnknownModel, match="'gpt-9' is neither a route"):
        gateway.decide("gpt-9", user("hi"))


def test_sbs_ranks_every_model(gateway: Gateway) -> None:
    assert gateway.decide("sbs", user(CHAT[0])).ranking == [STRONG, WEAK]


def test_threshold_policy_ranks_strong_and_weak(gateway: Gateway) -> None:
    assert gateway.decide("pair", user(CODE[0])).ranking == [STRONG, WEAK]
    assert gateway.decide("codyn/pair:2", user(CODE[0])).ranking == [WEAK, STRONG]


def test_calibration_at_startup_meets_its_target(gateway: Gateway) -> None:
    route = gateway.routes["cheap"]
    assert route.knob > 0.5
    assert gateway.decide("cheap", user(CODE[1])).ranking[0] == WEAK


def test_turns_and_blank_prompts(gateway: Gateway) -> None:
    messages = [
        {"role": "user", "content": "Write a Python function that sorts a list."},
        {"role": "assistant", "content": "def f(x): return sorted(x)"},
        {"role": "user", "content": [{"type": "text", "text": "Now say thanks."}]},
    ]
    assert routed_text(messages, 1) == "Now say thanks."
    assert (
        routed_text(messages, 2) == "Write a Python function that sorts a list.\n\nNow say thanks."
    )
    assert gateway.decide("two-turns", messages).ranking[0] == STRONG
    blank = gateway.decide("code", [{"role": "user", "content": "  "}])
    assert blank.ranking[0] == WEAK and set(blank.predicted.values()) == {None}
    system_only = [{"role": "system", "content": CODE[0]}]  # no user turn: the last message
    assert routed_text(system_only, 1) == CODE[0]
    assert gateway.decide("code", system_only).ranking[0] == STRONG


def test_sticky_route_keeps_a_conversation_on_its_model(gateway: Gateway) -> None:
    first = gateway.decide("code", user(CODE[0]), "conversation-1")
    gateway.answered(first, "conversation-1", first.chosen)
    later = gateway.decide("code", user("Say thanks."), "conversation-1")
    other = gateway.decide("code", user("Say thanks."), "conversation-2")
    assert (first.chosen, later.chosen, later.sticky) == (STRONG, STRONG, True)
    assert (other.chosen, other.sticky) == (WEAK, False)


def test_router_problems_name_the_config_and_route(tmp_path: Path) -> None:
    def fails(route: dict, message: str) -> None:
        config = load_config(write_config(tmp_path, models=MODELS, routes={"r": route}))
        with pytest.raises(DataError, match=message) as info:
            Gateway(config)
        assert str(info.value).startswith(str(config.path))

    fails({"router": str(tmp_path / "none")}, r"routes.r.router: .*no such file")
    other = router_dir(tmp_path / "other", models=(WEAK, "gpt-4o"))
    fails({"router": str(other)}, "routes.r.router: the catalog has no model gpt-4o")
    sbs = router_dir(tmp_path / "sbs")
    fails(
        {"router": str(sbs), "calibrate": {"data": str(tmp_path / "v.parquet"), "min_quality": 1}},
        "routes.r.calibrate:",
    )


@pytest.mark.parametrize("knob", ["-2", "-0.05", "0", "0.3", "5"])
def test_codyn_route_and_the_proxy_make_the_same_decision(gateway: Gateway, knob: str) -> None:
    """One decision path: `codyn route` (deploy.route) and the proxy's gateway decide through
    `codyn.policy.decide`, so for the same router, prompt and knob they choose alike."""
    route = gateway.routes["code"]
    setup = PolicySetup.read(route.spec.router)
    for text in (*CODE, *CHAT):
        routed = deploy_route(route.router, setup, [text], knob=float(knob))
        assert gateway.decide(f"codyn/code:{knob}", user(text)).chosen == routed.models[0]


def test_routes_take_any_registered_policy(tmp_path: Path) -> None:
    knn = router_dir(tmp_path / "knn", "knn", featuriser="tfidf", k=3)
    config = write_config(
        tmp_path,
        models=MODELS,
        routes={
            "tiers": {"router": str(knn), "policy": {"name": "tiers", "thresholds": [0.5]}},
            "budget": {"router": str(knn), "policy": "budget", "knob": 5e-5},
        },
    )
    gateway = Gateway(load_config(config))
    assert gateway.routes["tiers"].policy.thresholds == (0.5,)
    # train costs per call: WEAK 1e-5, STRONG 1e-4; the cap leaves only WEAK
    assert gateway.decide("budget", user(CODE[0])).ranking == [WEAK, STRONG]
    assert gateway.decide("codyn/budget:1", user(CODE[0])).chosen == STRONG
    with pytest.raises(BadModelSpec, match=r"no model costs at most 1e-06"):
        gateway.decide("codyn/budget:1e-6", user(CODE[0]))
    with pytest.raises(BadModelSpec, match="lambda must be a finite number"):
        Gateway(load_config(write_config(tmp_path, models=MODELS, routes={
            "u": {"router": str(knn)}}))).decide("codyn/u:nan", user(CODE[0]))  # fmt: skip
