"""Faults pillar: does the model survive bit flips in its weights, activations and inputs?

Single-bit flips drawn uniformly over every stored bit of every Conv/Linear weight (the physical
fault model), injected in place on the task's device and undone bit for bit; SDC (top-1 changed),
critical SDC (a correct prediction became wrong) and DUE (non-finite output) rates with Wilson
intervals; activation and input bit flips (one per sample); the share of weight bits no output
can depend on; vulnerability per layer and per bit position; what Ranger-style range
restriction and a weight range check buy and cost; the same campaign on fp32/fp16/bf16/int8
copies. Campaign sizes follow the profile (smoke: 200 faults; standard: Leveugle et al. 2009,
5 % margin at 95 % confidence; full: 1 % at 99 %).

The headline scores are the weight SDC and critical-SDC rates (lower is better).

Fault models and protections are not named here: the tests are parametrised over the registry
(built-ins, modules dropped into ``faults/``, third-party entry points), and each plugin runs in
the profiles it declares (:func:`trustbench.faults.profiles.selected_fault_models`; the
headline single bit flip runs in every profile), or as the ``[faults]`` settings
``fault_models`` / ``protections`` select.
"""

from __future__ import annotations

import pytest

from trustbench import registry
from trustbench.checkpoints import JsonCheckpoints
from trustbench.faults import profiles
from trustbench.faults.campaign import CampaignConfig, CampaignState, run_campaign
from trustbench.faults.errors import FaultError
from trustbench.faults.precision import compare_precisions
from trustbench.faults.protection import evaluate_protection, newcombe_difference

INTERVAL = "Wilson score interval over faults"

#: Every registered fault model but the headline, and every registered protection, at
#: collection time (registry discovery loads the entry points of third-party packages too).
FAULT_MODELS = [n for n in registry.all_plugins("fault") if n != profiles.HEADLINE_FAULT_MODEL]
PROTECTIONS = list(registry.all_plugins("protection"))


def test_registered_plugins_load_and_declare_valid_profiles(task):
    """Every fault-model and protection plugin loaded (built-in, dropped into faults/, or an
    installed package's entry point) with a usable ``profiles`` declaration: one that did not
    is left out of the measurement, and named here."""
    problems = registry.load_errors(("fault", "protection"))
    problems += profiles.declaration_problems("fault") + profiles.declaration_problems(
        "protection")
    assert not problems, "plugins left out of the faults pillar: " + "; ".join(problems)


@pytest.fixture(scope="module")
def faults_budget(bench_config):
    return profiles.budget(bench_config.profile, bench_config.pillar_options("faults"))


@pytest.fixture(scope="module")
def checkpoint(task, faults_budget, bench_interrupted):
    """``checkpoint(label)``: where the campaign labelled so keeps its progress (None: off).

    Complete campaigns stay saved until the task's faults tests are through, so a run
    interrupted later on takes them up again (a rerun that is not interrupted measures anew);
    an interrupted run leaves everything for the next one."""
    store = JsonCheckpoints()
    made = []

    def get(label):
        if not faults_budget.resume:
            return None
        made.append(store.progress(f"faults-{task.name}-{label}", CampaignState.from_dict,
                                   keep_complete=True))
        return made[-1]

    yield get
    if not bench_interrupted():
        for progress in made:
            progress.clear()


@pytest.fixture(scope="module")
def eval_set(task, faults_budget):
    n = min(faults_budget.n_inputs, len(task.x_test))
    return task.x_test[:n], task.y_test[:n]


@pytest.fixture(scope="module")
def weight_config(faults_budget, bench_config):
    b = faults_budget
    return CampaignConfig(target="weights", n_faults=b.n_faults, margin=b.margin,
                          confidence=b.confidence, seed=bench_config.seed)


@pytest.fixture(scope="module")
def weight_campaign(task, eval_set, weight_config, checkpoint):
    try:
        return run_campaign(task.model, *eval_set, weight_config,
                            checkpoint=checkpoint("weights"))
    except FaultError as exc:
        pytest.skip(f"no weight fault campaign for task {task.name}: {exc}")


def _one_per_sample(target, task, eval_set, budget, bench_config, checkpoint, **kw):
    """A campaign of one fault per sample (activations or inputs), skipped with the reason
    where the task's model does not allow it."""
    label = "-".join([target, *map(str, kw.values())])
    try:
        return run_campaign(task.model, *eval_set, target=target,
                            n_faults=budget.n_activation_faults, margin=budget.margin,
                            confidence=budget.confidence, seed=bench_config.seed,
                            checkpoint=checkpoint(label), **kw)
    except FaultError as exc:
        pytest.skip(f"no {target} fault campaign for task {task.name}: {exc}")


@pytest.fixture(scope="module")
def activation_campaign(task, eval_set, faults_budget, bench_config, checkpoint):
    return _one_per_sample("activations", task, eval_set, faults_budget, bench_config,
                           checkpoint)


@pytest.fixture(scope="module")
def input_campaign(task, eval_set, faults_budget, bench_config, checkpoint):
    return _one_per_sample("inputs", task, eval_set, faults_budget, bench_config, checkpoint)


def _params(res, **extra):
    return {"fault_model": res.fault_model, "distribution": res.distribution,
            "dtype": res.dtype, "n_inputs": res.n_inputs, "path": res.path,
            "strict_fp32": res.strict_fp32, "interval": INTERVAL, "confidence": res.confidence,
            **({"resumed_from_faults": res.resumed_from} if res.resumed_from else {}), **extra}


def _rate(record_metric, name, rate, res, *, weight=None):
    record_metric(name, rate.value, unit="fraction of faults", higher_is_better=False,
                  ci=rate.ci, n=rate.n, params=_params(res), score_weight=weight)


def test_weight_fault_rates(task, weight_campaign, bench_config, record_metric, record_check):
    res = weight_campaign
    record_check("faults.weights_bit_identical_after_campaign", res.complete,
                 f"{res.n_faults} faults injected and undone; stored words compared after")
    device = str(next(iter(task.model.parameters())).device)
    record_check("faults.injected_on_task_device", device.split(":")[0] ==
                 str(bench_config.device).split(":")[0],
                 f"weights flipped in place on {device}")
    _rate(record_metric, "weight_sdc_rate", res.sdc, res, weight=1.0)
    _rate(record_metric, "weight_critical_sdc_rate", res.critical_sdc, res, weight=1.0)
    _rate(record_metric, "weight_due_rate", res.due, res)
    record_metric("weight_inputs_corrupted_per_fault", res.mean_inputs_changed,
                  unit="fraction of inputs", higher_is_better=False, n=res.n_faults,
                  ci=res.mean_inputs_changed_ci,
                  params=_params(res, interval="percentile bootstrap over the faults; where no "
                                 "fault changed an input, the Wilson upper bound of the "
                                 "share of faults that changed any"))
    if res.inert_bits_share is not None:  # an exact count over all analysed bits, no interval
        record_metric("weight_inert_bits_share", res.inert_bits_share,
                      unit="fraction of stored bits", n=res.analysed_bits,
                      params=_params(res, faults_decided_without_forward=res.n_pruned,
                                     interval="none: an exact count over all analysed bits",
                                     definition="bits of weight words that every product "
                                     "multiplies by a zero input on the evaluation inputs "
                                     "(padding-only kernel taps, dead units): a finite "
                                     "fault there cannot change any output"))


def test_activation_fault_rates(activation_campaign, record_metric):
    res = activation_campaign
    _rate(record_metric, "activation_sdc_rate", res.sdc, res)
    _rate(record_metric, "activation_critical_sdc_rate", res.critical_sdc, res)
    _rate(record_metric, "activation_due_rate", res.due, res)


def test_input_fault_rates(input_campaign, record_metric):
    """Bit flips in the tensor the model receives (a corrupted input buffer), one per sample."""
    res = input_campaign
    _rate(record_metric, "input_sdc_rate", res.sdc, res)
    _rate(record_metric, "input_critical_sdc_rate", res.critical_sdc, res)
    _rate(record_metric, "input_due_rate", res.due, res)


def test_pixel_buffer_fault_rates(task, eval_set, faults_budget, bench_config, checkpoint,
                                  record_metric):
    """Images: bit flips in the 8-bit pixel buffer the [0, 1] input is decoded from."""
    if task.modality != "image" or tuple(task.input_range or ()) != (0.0, 1.0):
        pytest.skip(f"task {task.name} has no [0, 1] image inputs decoded from 8-bit pixels")
    res = _one_per_sample("inputs", task, eval_set, faults_budget, bench_config, checkpoint,
                          input_encoding="uint8")
    _rate(record_metric, "input_uint8_sdc_rate", res.sdc, res)
    _rate(record_metric, "input_uint8_critical_sdc_rate", res.critical_sdc, res)


def test_per_layer_vulnerability(weight_campaign, activation_campaign, record_metric):
    for prefix, res in (("weight", weight_campaign), ("activation", activation_campaign)):
        rows = [{"group": f"{lv.layer} ({lv.layer_type})", "value": lv.sdc.value,
                 "ci": list(lv.sdc.ci), "n": lv.sdc.n} for lv in res.per_layer]
        shares = {lv.layer: round(lv.bits_share, 6) for lv in res.per_layer}
        inert = {lv.layer: round(lv.inert_share, 6) for lv in res.per_layer
                 if lv.inert_share is not None}
        extra = {"inert_share": inert} if inert else {}
        record_metric(f"{prefix}_sdc_rate_by_layer", {"rows": rows}, unit="fraction of faults",
                      higher_is_better=False, n=res.n_faults,
                      params=_params(res, share_of_bits=shares, **extra))


def test_per_bit_vulnerability(weight_campaign, record_metric):
    res = weight_campaign
    series = res.per_bit_series()
    record_metric("weight_sdc_rate_by_bit", {**series, "x_label": "bit position (0 = LSB)",
                                             "y_label": "SDC rate"},
                  unit="fraction of faults", higher_is_better=False, n=res.n_faults,
                  params=_params(res))
    record_metric("weight_sdc_rate_by_layer_and_bit",
                  {"rows": res.per_bit_rows, "cols": res.per_bit_cols,
                   "values": res.per_bit_sdc},
                  unit="fraction of faults", higher_is_better=False, n=res.n_faults,
                  params=_params(res, cell_counts=res.per_bit_n))


@pytest.mark.parametrize("protection", PROTECTIONS)
def test_protection(protection, task, eval_set, faults_budget, weight_config, weight_campaign,
                    checkpoint, record_metric):
    """Each registered protection the profile runs (built in: Ranger, activation range
    restriction; the weight range check), on the same faults: SDC reduction with its interval,
    and the cost in clean accuracy and latency."""
    selected = profiles.selected_protections(faults_budget)
    if protection not in selected:
        pytest.skip(_not_selected("protection", protection, "protections", faults_budget))
    x_fit = task.x_train[:2000] if len(task.x_train) else eval_set[0]
    prot = registry.get("protection", protection)()
    modes = [m.training for m in task.model.modules()]
    try:
        try:
            prot.fit(task.model, x_fit.to(task.device))
        except FaultError as exc:
            pytest.skip(f"{protection} does not apply to task {task.name}: {exc}")
        res = evaluate_protection(task.model, *eval_set, prot, weight_config,
                                  baseline=weight_campaign,
                                  checkpoint=lambda label: checkpoint(f"{protection}-{label}"))
    finally:
        # the task's model is shared with every later test: a protection that left a module
        # in another mode is named, and the modes restored, so the others measure as before
        moved = [m.training for m in task.model.modules()] != modes
        for m, mode in zip(task.model.modules(), modes):
            m.training = mode
    if moved:
        pytest.fail(f"protection {protection} left modules of the model in another train/eval "
                    "mode (restored); its fit and applied must leave the model as they found it")
    interval = ("Newcombe interval for paired proportions (the same faults with and without "
                "the protection)" if res.paired else
                "Newcombe hybrid score interval of two independent samples (the campaigns did "
                "not run the same faults)")
    # the layers a protection guards: the keys of its ``bounds`` (built-ins, templates)
    layers = getattr(prot, "bounds", None)
    params = _params(weight_campaign, protection=res.protection,
                     **({"protected_layers": sorted(layers)} if layers is not None else {}),
                     interval=interval)
    record_metric(f"{protection}_sdc_reduction", res.sdc_reduction, unit="fraction of faults",
                  higher_is_better=True, ci=res.sdc_reduction_ci, n=res.protected.n_faults,
                  params=params)
    record_metric(f"{protection}_critical_sdc_reduction", res.critical_sdc_reduction,
                  unit="fraction of faults", higher_is_better=True,
                  ci=res.critical_sdc_reduction_ci, n=res.protected.n_faults, params=params)
    _rate(record_metric, f"{protection}_weight_sdc_rate", res.protected.sdc, res.protected)
    record_metric(f"{protection}_clean_accuracy_cost", res.accuracy_cost,
                  unit="fraction of inputs", higher_is_better=False, ci=res.accuracy_cost_ci,
                  n=res.n_inputs,
                  params={**params, "interval": "Newcombe interval for paired proportions "
                          "(the same inputs with and without the protection)"})
    record_metric(f"{protection}_latency_overhead", res.latency_overhead, unit="fraction",
                  higher_is_better=False, hardware_dependent=True, ci=res.latency_overhead_ci,
                  n=res.latency_reps,
                  params={**params, "estimate": "ratio of the medians of n interleaved timed "
                          "forward passes with and without the protection, minus 1",
                          "interval": "percentile bootstrap over the n timed pairs"})


def test_precision_comparison(task, eval_set, weight_config, faults_budget, checkpoint,
                              record_metric):
    try:
        results = compare_precisions(task.model, *eval_set, faults_budget.precisions,
                                     weight_config,
                                     checkpoint=lambda p: checkpoint(f"precision-{p}"))
    except FaultError as exc:  # e.g. a TorchScript model: its layers cannot be converted
        pytest.skip(f"no precision comparison for task {task.name}: {exc}")
    rows = [{"group": r.precision, "value": r.result.sdc.value, "ci": list(r.result.sdc.ci),
             "n": r.result.n_faults} for r in results]
    kept = {r.precision: r.kept_float for r in results if r.kept_float}
    record_metric("weight_sdc_rate_by_precision", {"rows": rows}, unit="fraction of faults",
                  higher_is_better=False,
                  params={"clean_accuracy": {r.precision: r.clean_accuracy for r in results},
                          "critical_sdc_rate": {r.precision: r.result.critical_sdc.value
                                                for r in results},
                          "interval": INTERVAL, "fault_model": "bitflip",
                          "distribution": "bit-uniform",
                          **({"layers_kept_in_fp32": kept} if kept else {})})
    ref = next((r for r in results if r.precision == "fp32"), None)
    if ref is not None and len(results) > 1:
        diffs = []
        for r in results:
            if r is ref:
                continue
            a, b = r.result.sdc, ref.result.sdc
            diffs.append({"group": r.precision, "value": a.value - b.value,
                          "ci": list(newcombe_difference(a.value, a.ci, b.value, b.ci)),
                          "n": r.result.n_faults})
        record_metric("weight_sdc_rate_difference_vs_fp32", {"rows": diffs},
                      unit="fraction of faults", higher_is_better=False,
                      params={"definition": "SDC rate of the copy minus that of fp32 (positive: "
                              "the copy is more vulnerable per stored bit)",
                              "n_fp32": ref.result.n_faults,
                              "interval": "Newcombe hybrid score interval of two independent "
                              "samples (each precision draws its own faults)"})


def _not_selected(kind, name, setting, budget):
    if getattr(budget, setting) is not None:
        return f"{name} is not in the [faults] {setting} setting"
    try:
        declared = ", ".join(profiles.declared_profiles(registry.get(kind, name))) or "none"
    except registry.RegistryError as exc:
        return (f"{name} is left out: its profiles declaration is not usable ({exc}); see "
                "test_registered_plugins_load_and_declare_valid_profiles")
    what = "fault model" if kind == "fault" else kind
    return (f"the {what} {name} runs in the profiles it declares ({declared}), not in "
            f"{budget.profile}; list it in the [faults] {setting} setting to measure it")


@pytest.fixture(scope="module")
def model_campaign(task, eval_set, weight_config, checkpoint):
    """``model_campaign(name)``: the weight campaign of fault model ``name`` (run once per
    module). Where it cannot run, the exception is returned instead: a :class:`FaultError`
    where the task's model does not allow it, anything else where the plugin is broken (its
    own test fails with it; the other fault models' rows are still recorded)."""
    done = {}

    def get(name):
        if name not in done:
            try:
                done[name] = run_campaign(task.model, *eval_set, weight_config,
                                          fault_model=name,
                                          checkpoint=checkpoint(f"model-{name}"))
            except Exception as exc:  # a broken third-party model must not cost the others
                done[name] = exc
        return done[name]

    return get


@pytest.mark.parametrize("fault_model", FAULT_MODELS)
def test_fault_model(fault_model, task, faults_budget, model_campaign):
    """Each registered fault model the profile runs: its weight campaign on the same
    configuration as the headline one (a row of ``weight_sdc_rate_by_fault_model``)."""
    if fault_model not in profiles.selected_fault_models(faults_budget):
        pytest.skip(_not_selected("fault", fault_model, "fault_models", faults_budget))
    res = model_campaign(fault_model)
    if isinstance(res, FaultError):
        pytest.skip(f"no {fault_model} campaign for task {task.name}: {res}")
    if isinstance(res, Exception):
        raise res
    assert res.complete and res.n_faults > 0


def test_other_fault_models(task, faults_budget, model_campaign, record_metric):
    """The SDC rate of every fault model the profile runs besides the headline, one row each
    (in the models' declared ``order``; campaigns shared with :func:`test_fault_model`)."""
    names = profiles.selected_fault_models(faults_budget)
    if not names:
        pytest.skip(f"the {faults_budget.profile} profile measures single bit flips only")
    rows, not_run = [], {}
    for name in names:
        res = model_campaign(name)
        if isinstance(res, Exception):
            not_run[name] = f"{type(res).__name__}: {res}"
            continue
        rows.append({"group": name, "value": res.sdc.value, "ci": list(res.sdc.ci),
                     "n": res.n_faults})
    if not rows:
        pytest.skip(f"no fault model campaign for task {task.name}: {not_run}")
    record_metric("weight_sdc_rate_by_fault_model", {"rows": rows}, unit="fraction of faults",
                  higher_is_better=False,
                  params={"interval": INTERVAL, **({"not_run": not_run} if not_run else {})})


def test_injection_speed(weight_campaign, activation_campaign, record_metric):
    for prefix, res in (("weight", weight_campaign), ("activation", activation_campaign)):
        record_metric(f"{prefix}_faults_per_second", res.faults_per_second,
                      unit="faults/s", higher_is_better=True, hardware_dependent=True,
                      n=res.n_faults,
                      params={"path": res.path, "path_reason": res.path_reason,
                              "execution": res.execution,
                              "execution_reason": res.execution_reason,
                              "n_inputs": res.n_inputs})
