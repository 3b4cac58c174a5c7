"""One judge rule (`tools.llm.judge_endpoint`) for every place that builds a judge: the driver's
`open_endpoints`, the Ray worker factory and the judge studies. Nothing here calls a model."""

import pytest
from trialwright.eval.judges.studies import open_judges, parse_judge_specs
from trialwright.graph.ray_backend import SettingsDeps
from trialwright.tools.llm import (
    ChatEndpoint,
    chat_endpoint,
    judge_endpoint,
    open_endpoints,
)
from trialwright.tools.settings import Settings

GEN_URL, JUDGE_URL = "http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"


def where(endpoint: ChatEndpoint) -> dict:
    """Server, model, key and temperature of an endpoint, read off its client (no request)."""
    chat = endpoint.chat
    bound = getattr(chat, "kwargs", {})  # a generator bound to temperature 0
    client = getattr(chat, "bound", chat)
    return {"base_url": client.openai_api_base, "model": endpoint.model_id,
            "key": client.openai_api_key.get_secret_value(),
            "temperature": bound.get("temperature", client.temperature),
            "slots": endpoint.max_concurrency}


def generator_at(settings: Settings, key: str = "k-gen", slots: int = 2) -> ChatEndpoint:
    return chat_endpoint(settings, base_url=GEN_URL, model="gen", api_key=key,
                         max_concurrency=slots)


@pytest.mark.parametrize(("judge_model", "expected"), [
    (None, "gen"),  # nothing set: the generator itself at temperature 0
    ("judge-m", "judge-m"),  # another model on the generator's server
])
def test_a_judge_on_the_generators_server_shares_its_key_and_slots(judge_model, expected):
    s = Settings(judge_base_url=None, judge_model=judge_model, judge_api_key=None)
    generator = generator_at(s)
    judge = judge_endpoint(s, generator)
    assert where(judge) == {"base_url": GEN_URL, "model": expected, "key": "k-gen",
                            "temperature": 0.0, "slots": 2}
    assert judge.gate() is generator.gate()


def test_judge_settings_replace_server_model_and_key():
    s = Settings(judge_base_url=JUDGE_URL, judge_model="judge-m", judge_api_key="k-judge")
    generator = generator_at(s)
    judge = judge_endpoint(s, generator)
    assert where(judge) == {"base_url": JUDGE_URL, "model": "judge-m", "key": "k-judge",
                            "temperature": 0.0, "slots": 0}
    assert judge.gate() is None and generator.gate() is not None  # its own server, own limits


def test_a_judge_on_another_server_falls_back_to_the_configured_key_not_the_embedded_one():
    s = Settings(judge_base_url=JUDGE_URL, judge_api_key=None, llm_api_key="k-configured")
    judge = judge_endpoint(s, generator_at(s, key="not-needed"))  # e.g. the embedded server
    assert where(judge)["key"] == "k-configured"


CASES = [
    {},
    {"judge_model": "judge-m"},
    {"judge_api_key": "k-judge"},
    {"judge_base_url": JUDGE_URL, "judge_model": "judge-m", "judge_api_key": "k-judge"},
    {"judge_base_url": JUDGE_URL},
]


@pytest.mark.parametrize("judge_settings", CASES)
def test_the_ray_workers_judge_is_the_drivers_judge(judge_settings):
    s = Settings(llm_base_url=GEN_URL, llm_model="gen", llm_api_key="k-gen", **judge_settings)
    with open_endpoints(s) as (generator, driver_judge):
        factory = SettingsDeps(settings=s, base_url=generator.base_url, model=generator.model_id,
                               api_key=generator.api_key, slots=generator.max_concurrency,
                               retrieval=object())  # an actor handle; not called here
        worker = factory()
    assert where(worker.generator) == where(generator)
    assert where(worker.judge) == where(driver_judge)
    if "judge_api_key" in judge_settings:
        assert where(worker.judge)["key"] == "k-judge" != where(worker.generator)["key"]


def test_the_ray_workers_judge_uses_judge_api_key():
    s = Settings(judge_model="judge-m", judge_api_key="k-judge")
    deps = SettingsDeps(settings=s, base_url=GEN_URL, model="gen", api_key="k-gen", slots=2,
                        retrieval=object())()
    assert where(deps.judge) == {"base_url": GEN_URL, "model": "judge-m", "key": "k-judge",
                                 "temperature": 0.0, "slots": 2}
    assert where(deps.generator)["key"] == "k-gen"


def test_a_study_judge_on_the_judge_server_uses_the_same_rule():
    s = Settings(llm_base_url=GEN_URL, llm_model="gen", llm_api_key="k-gen",
                 judge_base_url=JUDGE_URL, judge_model="judge-m", judge_api_key="k-judge")
    with open_judges(s, parse_judge_specs("default,other-model,gen")) as found:
        assert where(found["default"])["model"] == "judge-m"
        assert where(found["other-model"]) == {"base_url": JUDGE_URL, "model": "other-model",
                                               "key": "k-judge", "temperature": 0.0, "slots": 0}
        # the generator's model id names the generator itself, at temperature 0
        assert where(found["gen"]) == {"base_url": GEN_URL, "model": "gen", "key": "k-gen",
                                       "temperature": 0.0, "slots": 0}
