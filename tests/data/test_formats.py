"""The dataset contract: records validate, bad lines are named by file and line."""

from __future__ import annotations

import json

import pytest

from wow_ray.data.formats import (
    ChatSample,
    DatasetError,
    PreferenceSample,
    SampleMeta,
    read_jsonl,
    write_jsonl,
)

META = {"agent": "master", "source": "cold_start", "pack": "p", "pack_version": "x",
        "prompt_version": "1", "situation_id": "s", "dialogue_id": "d"}


def sample(i: int = 0) -> ChatSample:
    return ChatSample(id=f"s{i}", messages=[{"role": "system", "content": "sys"},
                                            {"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": '{"next":"end"}'}],
                      meta=SampleMeta(**META))


def test_round_trip(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, [sample(0), sample(1)])
    back = list(read_jsonl(path, ChatSample))
    assert [s.id for s in back] == ["s0", "s1"]
    assert back[0].target == '{"next":"end"}' and back[0].prompt[-1].content == "hi"


def test_bad_line_is_named(tmp_path):
    path = tmp_path / "train.jsonl"
    good = sample().model_dump_json()
    bad = json.loads(good)
    bad["messages"][-1]["role"] = "user"  # no assistant target
    path.write_text(good + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DatasetError, match=r"train\.jsonl:2: .*assistant target"):
        list(read_jsonl(path, ChatSample))
    path.write_text(good + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"train\.jsonl:2: not JSON"):
        list(read_jsonl(path, ChatSample))


def test_preference_needs_two_answers():
    prompt = [{"role": "user", "content": "q"}]
    with pytest.raises(ValueError, match="same answer"):
        PreferenceSample(id="p", prompt=prompt, chosen="a", rejected="a", meta=SampleMeta(**META))
    unknown = {**META, "agent": "nobody"}
    with pytest.raises(ValueError):
        SampleMeta(**unknown)
