"""Temporal-layer search: tables, additive prediction, elimination and Alg. A1's choices."""
import dataclasses

import pytest
import torch

from edgevid.config import UNET_PRESETS
from edgevid.search.evolve import all_plans, eliminate, memory_bytes, pareto_front, search
from edgevid.search.lut import LatencyTable, build_table, entry_key, stage_geometry
from edgevid.search.predict import predict
from edgevid.search.space import MAX_PER_POSITION, Action, UNetPlan, actions

TINY = dataclasses.replace(UNET_PRESETS["tiny"], temporal_layers=(("conv1d",), ("self_attn1d",)),
                           mid_temporal_layers=("self_attn1d",))
LATENT = (4, 3, 8, 8)
KINDS = ("conv1d", "self_attn1d", "cross_attn1d")


def synthetic_table(ms=None) -> LatencyTable:
    """Entries with known costs: kind k at position p costs ms[k] * (p + 1)^2 ms."""
    ms = ms or {"conv1d": 1.0, "self_attn1d": 2.0, "cross_attn1d": 3.0}
    table = LatencyTable("eager", 1, "test", torch.__version__, LATENT, TINY,
                         {"ms": 10.0, "peak_bytes": 1000, "params": 100})
    for p, (ch, t, h, w) in enumerate(stage_geometry(TINY, LATENT)):
        for kind, v in ms.items():
            table.entries[entry_key(kind, ch, t, h, w)] = {"ms": v * (p + 1) ** 2, "peak_bytes": 100 * v, "params": 10}
    return table


def test_plan_round_trips_configs_and_never_mixes():
    plan = UNetPlan.from_config(TINY)
    assert plan.to_config(TINY) == TINY and plan.key == "conv1d1-self_attn1d1|self_attn1d1"
    with pytest.raises(ValueError, match="one temporal layer type per position"):
        UNetPlan.from_config(UNET_PRESETS["tiny"])  # its stages mix conv1d and conv3d
    for a in actions(plan):
        new = a.apply(plan)
        assert all(k is None or c >= 1 for k, c in new.positions)
    with pytest.raises(ValueError, match="mix types"):
        Action("add", "conv3d", 0).apply(plan)
    full = UNetPlan((("conv1d", MAX_PER_POSITION), (None, 0), (None, 0)))
    assert Action("add", "conv1d", 0) not in actions(full)
    for p in (plan, full, *all_plans(3, KINDS)[::97]):
        assert UNetPlan.from_key(p.key) == p
    for bad in ("conv1d1-none", "conv1d-none|none", "conv9d1-none|none", "conv1d4-none|none"):
        with pytest.raises(ValueError):
            UNetPlan.from_key(bad)


def test_table_building_is_keyed_and_round_trips(tmp_path):
    table = build_table(TINY, LATENT, repeats=1, kinds=("conv1d", "self_attn1d"))
    keys = sorted(table.entries)
    from edgevid.search.lut import res_block_shapes, res_entry_key

    geometry = stage_geometry(TINY, LATENT)
    assert keys == sorted([entry_key(k, c, t, h, w) for c, t, h, w in set(geometry) for k in ("conv1d", "self_attn1d")]
                          + [res_entry_key(i, o, hidden, *geometry[s][1:]) for s, i, o in set(res_block_shapes(TINY))
                             for hidden in ((16, 8, 4), (32, 16, 8))[s]]
                          + [entry_key("spatial_attn", *geometry[1])])
    assert all(e["ms"] > 0 and e["peak_bytes"] > 0 and e["params"] > 0 for e in table.entries.values())
    loaded = LatencyTable.load(table.save(tmp_path / "lut.json"))
    assert loaded == table
    again = build_table(TINY, LATENT, repeats=1, kinds=("conv1d", "self_attn1d"))
    assert sorted(again.entries) == keys and [e["params"] for e in again.entries.values()] == \
        [e["params"] for e in table.entries.values()]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a look-up table"):
        LatencyTable.load(tmp_path / "bad.json")


def test_executorch_runtime_times_a_whole_unet_with_temporal_layers():
    """measure_plan on the ExecuTorch runtime (`search validate --lut <executorch table>`): a UNet
    whose mobile forms build new layers (Conv1d) exports with frozen parameters."""
    pytest.importorskip("executorch")
    from edgevid.search.lut import measure_plan

    table = dataclasses.replace(synthetic_table(), runtime="executorch")
    plan = UNetPlan((("conv1d", 1), ("self_attn1d", 1), ("conv1d", 1)))
    assert measure_plan(table, plan, repeats=1) > 0


def test_measure_plans_interleaves_rounds(monkeypatch):
    """`search validate` times its plans in interleaved rounds (each plan once per round) and keeps
    each plan's median over the rounds, so one slow moment cannot inflate all of one plan's calls."""
    import edgevid.search.lut as lut

    order, readings = [], {"a": iter([10.0, 99.0, 12.0]), "b": iter([20.0, 21.0, 80.0])}

    def fake_timer(table, plan, calls=3, seed=0):
        def run():
            order.append(plan)
            return next(readings[plan])
        return run

    monkeypatch.setattr(lut, "plan_timer", fake_timer)
    assert lut.measure_plans(synthetic_table(), ["a", "b"], rounds=3) == [12.0, 21.0]
    assert order == ["a", "b"] * 3
    readings = {"a": iter([10.0, 99.0, 12.0]), "b": iter([20.0, 21.0, 80.0])}  # search_pair keeps every round
    assert lut.measure_plan_rounds(synthetic_table(), ["a", "b"], rounds=3) == [[10.0, 99.0, 12.0], [20.0, 21.0, 80.0]]


def test_additive_prediction_on_a_synthetic_table():
    table = synthetic_table()
    plan = UNetPlan((("conv1d", 2), (None, 0), ("cross_attn1d", 1)))
    # stage 0: 2 layers x 3 blocks x 1 ms; stage 1: none; mid (position 2): 1 x 1 block x 3 ms x 9
    cost = predict(table, plan)
    assert cost.ms == pytest.approx(10 + 2 * 3 * 1.0 + 1 * 1 * 27.0)
    assert cost.params == 100 + 2 * 3 * 10 + 10 and cost.peak_bytes == 1000 + 300
    with pytest.raises(ValueError, match="no entry"):
        predict(table, UNetPlan((("conv3d", 1), (None, 0), (None, 0))))


def test_elimination_removes_exactly_the_over_budget_plans():
    table = synthetic_table()
    plans = all_plans(3, KINDS, max_per_position=2)
    mem_budget, lat_budget = 1000 + 250 + 4 * 200, 25.0
    kept, oom, slow = eliminate(plans, table, memory_budget=mem_budget, latency_budget=lat_budget)
    for p in plans:
        c = predict(table, p)
        over_mem = memory_bytes(c) > mem_budget
        assert (p in kept) == (not over_mem and c.ms <= lat_budget)
    assert oom == sum(memory_bytes(predict(table, p)) > mem_budget for p in plans)
    assert len(kept) + oom + slow == len(plans)


def test_one_step_picks_the_best_ratio_and_never_mixes():
    table = synthetic_table()
    start = UNetPlan(((None, 0), (None, 0), (None, 0)))
    gain = {"conv1d": 0.10, "self_attn1d": 0.30, "cross_attn1d": 0.30}  # quality per layer, any position

    def quality(plan):
        return sum(gain[k] * c for k, c in plan.positions if k)

    result = search(table, start, quality, kinds=KINDS, max_iterations=1)
    action, after = result.path[1]
    # dQ/dLat: conv1d at 0: 0.1 / 3 ms; self_attn1d at 0: 0.3 / 6 ms (the best); cross at 0: 0.3 / 9;
    # at the mid block (one block, 9x the cost): 0.1 / 9, 0.3 / 18, 0.3 / 27
    assert action == "add self_attn1d @ 0"
    best_ratio = max((quality(e.plan) / (e.cost.ms - 10.0)) for e in result.evaluated.values() if e.cost.ms > 10)
    assert quality(after.plan) / (after.cost.ms - 10.0) == pytest.approx(best_ratio)
    full = search(table, start, quality, kinds=KINDS, latency_budget=40.0, max_iterations=20)
    for _, e in full.path:
        assert e.cost.ms <= 40.0
        assert all(k is None or k in KINDS for k, _ in e.plan.positions)
    assert full.best.quality >= after.quality


def test_over_budget_start_removes_the_cheapest_quality_loss_and_front_is_pareto():
    table = synthetic_table()
    start = UNetPlan((("cross_attn1d", 2), ("conv1d", 1), ("self_attn1d", 1)))

    def quality(plan):
        return sum({"conv1d": 0.2, "self_attn1d": 0.15, "cross_attn1d": 0.05}[k] * c for k, c in plan.positions if k)

    result = search(table, start, quality, kinds=KINDS, latency_budget=predict(table, start).ms - 1, max_iterations=1)
    # per ms saved: cross_attn1d @ 0 loses 0.05 / 9, conv1d @ 1 0.2 / 12, self_attn1d @ mid 0.15 / 18
    assert result.path[1][0] == "remove cross_attn1d @ 0"
    front = pareto_front(list(result.evaluated.values()))
    for p in front:
        assert not any(q.quality > p.quality and q.cost.ms < p.cost.ms for q in result.evaluated.values())


def test_search_cli_lut_validate_run_on_a_tiny_model(tmp_path, capsys):
    import json

    from edgevid.cli import main
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.pipeline import EdgeVidPipeline
    from tests.conftest import make_tiny_pipeline

    tiny = make_tiny_pipeline(num_frames=5, size=32)
    unet = SpatioTemporalUNet(dataclasses.replace(TINY, text_dim=tiny.text_encoder.dim))
    EdgeVidPipeline(tiny.vae, unet, tiny.text_encoder, tiny.defaults).save_pretrained(tmp_path / "model")
    lut = tmp_path / "lut.json"
    assert main(["search", "lut", "--model", str(tmp_path / "model"), "--repeats", "1", "-o", str(lut)]) == 0
    table = LatencyTable.load(lut)
    # 6 kinds x 2 stage geometries; 6 ResBlocks x 3 hidden widths; one transformer geometry (stage 1 = mid)
    assert table.latent == (4, 2, 4, 4) and len(table.entries) == 6 * 2 + 6 * 3 + 1
    assert main(["search", "validate", "--lut", str(lut), "--num", "2", "--repeats", "1", "--rounds", "2"]) == 0
    assert "largest error" in capsys.readouterr().out
    assert main(["search", "validate", "--lut", str(lut), "--rounds", "0"]) == 1
    assert "--rounds" in capsys.readouterr().err
    out = tmp_path / "searched"
    assert main(["search", "run", "--lut", str(lut), "--model", str(tmp_path / "model"), "--iterations", "1",
                 "--sample-actions", "2", "--kinds", "conv1d,self_attn1d", "--proxy-steps", "1", "--proxy-specs", "1",
                 "--run-dir", str(tmp_path / "run"), "-o", str(out)]) == 0
    summary = json.loads((out / "search.json").read_text())
    assert summary["start"]["plan"] == "conv1d1-self_attn1d1|self_attn1d1" and len(summary["evaluated"]) == 3
    assert (out / "pareto.png").stat().st_size > 1000 and json.loads((out / "unet.json").read_text())["channels"]
    cached = json.loads((tmp_path / "run" / "quality.json").read_text())
    assert len(cached) == 3  # a second run reuses these
    # score: the given plans under two training seeds, at equal compute (steps scaled by latency)
    capsys.readouterr()
    assert main(["search", "score", "--plans", "model", "none-self_attn1d2|none", "--train-seeds", "0", "1",
                 "--lut", str(lut), "--equal-compute", "--model", str(tmp_path / "model"), "--proxy-steps", "2",
                 "--proxy-specs", "1", "--run-dir", str(tmp_path / "run"), "-o", str(tmp_path / "score.json")]) == 0
    rows = json.loads((tmp_path / "score.json").read_text())["rows"]
    assert [r["plan"] for r in rows] == ["conv1d1-self_attn1d1|self_attn1d1", "none-self_attn1d2|none"]
    assert all(len(r["quality"]) == 2 and r["std"] is not None for r in rows)
    assert rows[0]["steps"] == 2 and rows[1]["steps"] == round(2 * rows[0]["ms"] / rows[1]["ms"])
    assert "\\|" in capsys.readouterr().out  # plan keys escaped in the markdown table
    with pytest.raises(SystemExit, match="needs --lut"):
        main(["search", "score", "--plans", "model", "--equal-compute", "--run-dir", str(tmp_path / "run")])
    # the spatial search: validate shrunk backbones, then run with spatial actions (start: the model's own blocks)
    capsys.readouterr()
    assert main(["search", "validate", "--lut", str(lut), "--num", "2", "--repeats", "1", "--spatial"]) == 0
    assert "+sa" in capsys.readouterr().out
    out = tmp_path / "searched-spatial"
    assert main(["search", "run", "--spatial", "--lut", str(lut), "--model", str(tmp_path / "model"), "--iterations",
                 "1", "--sample-actions", "3", "--kinds", "conv1d", "--proxy-steps", "1", "--proxy-metric", "flow_loss",
                 "--run-dir", str(tmp_path / "run"), "-o", str(out)]) == 0
    summary = json.loads((out / "search.json").read_text())
    assert summary["start"]["plan"] == "conv1d1-self_attn1d1|self_attn1d1+sa011-h16.32"
    assert summary["coarse"]["plans"] == 4 ** 3 * 2 * 2 * 3 * 3  # (none + conv1d x 1-3)^3 x attention x hidden
    assert len(summary["evaluated"]) == 4 and all("+sa" in k for k in summary["evaluated"])
    with pytest.raises(SystemExit, match="spatial part"):
        main(["search", "run", "--spatial", "--lut", str(lut), "--start", "none-none|none", "--run-dir",
              str(tmp_path / "run"), "-o", str(out)])


def test_flow_loss_proxy_is_paired_and_rewards_trained_temporal_layers(tmp_path):
    """The flow-loss proxy scores every candidate on the same held-out clips, noise and t, so a
    repeated evaluation gives the same number; the spatial-only plan is its own reference (0);
    and temporal layers trained on the clips remove some of that loss (> 0)."""
    from conftest import make_tiny_pipeline

    from edgevid.search.quality import ProxyConfig, QualityProxy

    pipe = make_tiny_pipeline(num_frames=5, size=32)
    cfg = ProxyConfig(frames=5, size=32, steps=30, batch_size=2, num_clips=8, heldout_clips=4, metric="flow_loss",
                      lr=3e-3)
    proxy = QualityProxy(pipe, cfg, tmp_path)
    none = UNetPlan(((None, 0),) * 3)
    assert proxy(none) == pytest.approx(0.0, abs=1e-6)
    plan = UNetPlan((("conv1d", 1), ("self_attn1d", 1), ("self_attn1d", 1)))
    unet = proxy.train_candidate(plan)
    assert proxy.heldout_loss(unet) == proxy.heldout_loss(unet)
    assert proxy(plan) > 0
    assert json_keys(tmp_path / "quality.json") >= 2  # cached by plan
    # decoder channel weighting (the default) is measured once and used; uniform is another setting
    weights = proxy.channel_weights(None)
    assert weights.shape == (pipe.vae.config.latent_channels,) and weights.min() >= 0.05
    uniform = QualityProxy(pipe, dataclasses.replace(cfg, channel_weighting="uniform"), tmp_path)
    assert uniform.settings != proxy.settings and uniform.channel_weights(None) is None
    # train_seed: same clips, another init and batch order -> another setting and another trained model;
    # the default (None) keeps the key results were cached under before the field existed
    reseeded = QualityProxy(pipe, dataclasses.replace(cfg, train_seed=1), tmp_path)
    assert reseeded.settings != proxy.settings
    assert QualityProxy(pipe, dataclasses.replace(cfg, train_seed=None), tmp_path).settings == proxy.settings
    assert reseeded(plan) != proxy(plan)
    # spatial_lr: 0 (the default) keeps the backbone frozen and the old key; > 0 trains it too
    spatial_names = [k for k in pipe.unet.state_dict() if ".temporal." not in k]
    frozen = unet.state_dict()
    assert all(torch.equal(frozen[k], pipe.unet.state_dict()[k]) for k in spatial_names)
    assert QualityProxy(pipe, dataclasses.replace(cfg, spatial_lr=0.0), tmp_path).settings == proxy.settings
    tuned = QualityProxy(pipe, dataclasses.replace(cfg, spatial_lr=1e-3, steps=2), tmp_path)
    assert tuned.settings != proxy.settings
    moved = tuned.train_candidate(plan).state_dict()
    assert sum(not torch.equal(moved[k], pipe.unet.state_dict()[k]) for k in spatial_names) > len(spatial_names) // 2


def json_keys(path):
    import json

    return len(json.loads(path.read_text()))


def test_proxy_config_rejects_unknown_metric():
    from edgevid.search.quality import ProxyConfig

    with pytest.raises(ValueError, match="metric"):
        ProxyConfig(metric="vbench")
    with pytest.raises(ValueError, match="channel_weighting"):
        ProxyConfig(channel_weighting="pixels")


def test_spatial_plans_round_trip_and_only_shrink_the_backbone():
    from edgevid.search.space import SpatialPlan, hidden_options, spatial_plans

    plan = UNetPlan.from_config(TINY, spatial=True)
    assert plan.key == "conv1d1-self_attn1d1|self_attn1d1+sa011-h16.32" and UNetPlan.from_key(plan.key) == plan
    assert plan.to_config(TINY) == TINY  # the backbone's own blocks give back its config
    assert hidden_options(16, 4) == (16, 8, 4) and hidden_options(160, 16) == (160, 80)
    every = spatial_plans(TINY)
    assert len(every) == 2 * 2 * 3 * 3 and len(set(every)) == len(every)  # stage 0 has no attention to drop
    for s in every:
        cfg = UNetPlan(plan.positions, s).to_config(TINY)
        assert not cfg.spatial_attention[0] and len(cfg.res_hidden_channels or cfg.channels) == 2
    legal = {str(a) for a in actions(plan, KINDS, TINY)}
    assert {"remove spatial_attn @ 1", "remove spatial_attn @ 2", "remove res_hidden @ 0",
            "remove res_hidden @ 1"} <= legal
    assert not any("add spatial_attn" in a or "add res_hidden" in a for a in legal)  # nothing to restore yet
    assert not any("spatial" in str(a) for a in actions(UNetPlan.from_config(TINY), KINDS, TINY))  # temporal-only plans
    narrow = Action("remove", "res_hidden", 0).apply(plan, TINY)
    assert narrow.spatial.hidden == (8, 32) and Action("add", "res_hidden", 0).apply(narrow, TINY) == plan
    dropped = Action("remove", "spatial_attn", 2).apply(plan, TINY)
    assert dropped.to_config(TINY).mid_attention is False
    with pytest.raises(ValueError, match="cannot be widened"):
        Action("add", "res_hidden", 0).apply(plan, TINY)
    with pytest.raises(ValueError, match="adds attention"):
        UNetPlan(plan.positions, SpatialPlan((True, True, True), (16, 32))).to_config(TINY)
    with pytest.raises(ValueError, match="not one of"):
        UNetPlan(plan.positions, SpatialPlan((False, True, True), (12, 32))).to_config(TINY)
    searched = UNetPlan.from_key("conv1d1-self_attn1d1-none|none+sa0110-h32.64.80")
    assert searched.to_config(UNET_PRESETS["small"]) == UNET_PRESETS["small-searched"]  # the preset is the search's plan
    conv = UNetPlan.from_key("conv1d1-conv1d1-none|none+sa0110-h32.64.80")
    assert conv.to_config(UNET_PRESETS["small"]) == UNET_PRESETS["small-searched-conv"]
    for bad in ("none-none|none+sa01-h16.32", "none-none|none+attn"):
        with pytest.raises(ValueError):
            UNetPlan.from_key(bad).to_config(TINY)


def test_spatial_prediction_is_exact_in_parameters_and_additive_in_latency():
    """Parameters of every shrunk backbone, predicted from the table, equal the built UNet's; the
    latency moves by exactly the entries' differences."""
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.search.evolve import eliminate_counts
    from edgevid.search.lut import res_block_shapes, res_entry_key
    from edgevid.search.predict import spatial_difference
    from edgevid.search.space import SpatialPlan, spatial_plans

    table = build_table(TINY, LATENT, repeats=1, kinds=KINDS)
    start = UNetPlan.from_config(TINY, spatial=True)
    for s in spatial_plans(TINY):
        plan = UNetPlan(start.positions, s)
        built = SpatioTemporalUNet(plan.to_config(TINY))
        assert predict(table, plan).params == sum(p.numel() for p in built.parameters())
    # latency: known entries, one narrowed stage and one dropped transformer
    for key, e in table.entries.items():
        e["ms"] = 1.0 if key.startswith("res/") else 100.0 if key.startswith("spatial_attn/") else e["ms"]
    for (stage, cin, cout) in res_block_shapes(TINY):
        if stage == 1:
            _, t, h, w = stage_geometry(TINY, LATENT)[1]
            table.entries[res_entry_key(cin, cout, 16, t, h, w)]["ms"] = 0.25
    shrunk = SpatialPlan((False, True, False), (16, 16))
    assert spatial_difference(table, shrunk)[0] == pytest.approx(3 * (0.25 - 1.0) - 100.0)  # 3 stage-1 blocks, mid once
    assert predict(table, UNetPlan(start.positions, shrunk)).ms == \
        pytest.approx(predict(table, start).ms + 3 * (0.25 - 1.0) - 100.0)
    # the coarse stage's counts over the product, without building it
    temporal = all_plans(3, ("conv1d",), max_per_position=2)
    spatial = spatial_plans(TINY)
    product = all_plans(3, ("conv1d",), max_per_position=2, spatial=spatial)
    budget = predict(table, start).ms - 50
    kept, oom, slow = eliminate(product, table, latency_budget=budget, memory_budget=1e9)
    assert eliminate_counts(temporal, table, spatial, 1e9, budget) == (len(kept), oom, slow) and len(kept) > 0


def test_inherit_backbone_keeps_the_function_and_the_important_channels():
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.search.quality import inherit_backbone
    from edgevid.search.space import SpatialPlan

    torch.manual_seed(0)
    backbone = SpatioTemporalUNet(TINY).eval()
    for p in backbone.parameters():
        p.data.normal_(0, 0.1)
    x, t, ctx = torch.randn(1, 4, 3, 8, 8), torch.tensor([0.5]), torch.randn(1, 5, TINY.text_dim)
    same = SpatioTemporalUNet(TINY).eval()
    inherit_backbone(backbone, same)
    temporal = {k: v for k, v in backbone.state_dict().items() if ".temporal." in k}
    same.load_state_dict(temporal, strict=False)
    with torch.no_grad():
        assert torch.equal(same(x, t, ctx), backbone(x, t, ctx))
    whole = SpatioTemporalUNet(TINY).eval()
    inherit_backbone(backbone, whole, keep_temporal=True)  # the temporal layers too (train t2v --shrink-to)
    with torch.no_grad():
        assert torch.equal(whole(x, t, ctx), backbone(x, t, ctx))
    # a dropped transformer = the backbone with that (residual) transformer's outputs zeroed
    plan = UNetPlan.from_config(TINY, spatial=True)
    no_mid = SpatioTemporalUNet(UNetPlan(plan.positions, SpatialPlan((False, True, False), (16, 32))).to_config(TINY)).eval()
    inherit_backbone(backbone, no_mid)
    no_mid.load_state_dict(temporal, strict=False)
    zeroed = SpatioTemporalUNet(TINY).eval()
    zeroed.load_state_dict(backbone.state_dict())
    for name in ("attn.out", "cross.out", "mlp.fc2"):
        layer = zeroed.mid_block.transformer.get_submodule(name)
        layer.weight.data.zero_(), layer.bias.data.zero_()
    with torch.no_grad():
        torch.testing.assert_close(no_mid(x, t, ctx), zeroed(x, t, ctx), rtol=0, atol=1e-6)
    # a narrowed ResBlock keeps the hidden channels that write most into its output, in order
    block = backbone.down_blocks[0][0].res
    block.norm2.weight.data.fill_(1.0)
    block.conv2.weight.data[:, [1, 5, 6, 12]] *= 100
    narrow = SpatioTemporalUNet(UNetPlan(plan.positions, SpatialPlan((False, True, True), (4, 32))).to_config(TINY))
    inherit_backbone(backbone, narrow)
    got = narrow.down_blocks[0][0].res
    assert torch.equal(got.conv1.weight, block.conv1.weight[[1, 5, 6, 12]])
    assert torch.equal(got.conv2.weight, block.conv2.weight[:, [1, 5, 6, 12]])
    assert torch.equal(got.emb.bias, block.emb.bias[[1, 5, 6, 12, 17, 21, 22, 28]])  # scale rows, then shift rows
    with pytest.raises(ValueError, match="only shrink"):
        inherit_backbone(narrow, backbone)


def test_spatial_search_step_values_spatial_and_temporal_actions_alike():
    """Alg. A1 over both action sets: over budget, the removal that loses least quality per ms."""
    from edgevid.search.space import SpatialPlan

    table = build_table(TINY, LATENT, repeats=1, kinds=KINDS)
    for key, e in table.entries.items():
        e["ms"] = {"res": 2.0, "spatial_attn": 10.0}.get(key.split("/")[0], 1.0)
    for key, e in table.entries.items():
        if key.startswith("res/") and "/h16/" not in key and "/h32/" not in key:
            e["ms"] = 1.0  # narrowed blocks save 1 ms each
    table.backbone["ms"] = 100.0
    start = UNetPlan.from_config(TINY, spatial=True)

    def quality(plan):  # attention is worth a lot, narrowing costs little, temporal layers some
        s = plan.spatial
        return 0.5 * sum(s.attention) - 0.01 * sum(h < b for h, b in zip(s.hidden, (16, 32))) + \
            0.05 * sum(c for _, c in plan.positions)

    result = search(table, start, quality, kinds=("conv1d",), latency_budget=predict(table, start).ms - 1,
                    max_iterations=1)
    action, after = result.path[1]
    # per ms saved: narrowing stage 0 or 1 loses 0.01 / 3 ms; dropping attention 0.5 / 10-30 ms; a
    # temporal removal 0.05 / 1-3 ms
    assert action in ("remove res_hidden @ 0", "remove res_hidden @ 1")
    assert after.plan.spatial != start.spatial and isinstance(after.plan.spatial, SpatialPlan)
