"""Markdown of ``gpu_suite.json`` (see ``benchmarks/gpu_suite.py``): one table per section."""
from __future__ import annotations

from typing import Any


def _f(x: Any, digits: int = 2, suffix: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    if isinstance(x, (int, float)):
        return f"{x:.{digits}f}{suffix}"
    return str(x)


def _problem(row: dict[str, Any]) -> str | None:
    """The text of a skipped or failed row, if it is one."""
    if "skipped" in row:
        return f"skipped: {row['skipped']}"
    if "error" in row:
        return f"failed: {row['error'].splitlines()[0][:160]}"
    return None


def _header(results: dict[str, Any]) -> list[str]:
    m = results.get("machine", {})
    gpu = results.get("sections", {}).get("train", {}).get("gpu")
    where = (f"{gpu['name']} (compute capability {gpu['capability']}, {gpu['memory_gib']:.0f} GiB, "
             f"{gpu['multiprocessors']} SMs, CUDA {gpu['cuda']}, cuDNN {gpu['cudnn']})" if gpu else results.get("device"))
    lines = [f"# GPU figures: {where}", "",
             f"Command: `{results.get('command')}` on {results.get('date')}; budget {_f(results.get('budget_s'), 0)} s, "
             f"took {_f(results.get('wall_s'), 0)} s{'' if results.get('finished') else ' (unfinished: partial results)'}.",
             *(["", "Earlier runs into this file: " + "; ".join(f"`{r['command']}` on {r['date']} ({', '.join(r['sections'])})"
                                                           for r in results["runs"][:-1]) + "."]
               if len(results.get("runs", [])) > 1 else []),
             "", f"Machine: {m.get('cpu')}, {m.get('cpu_count')} CPUs, torch {m.get('torch')}, Python {m.get('python')}, "
             f"{m.get('platform')}."]
    if m.get("nvidia_smi"):
        lines += ["", f"nvidia-smi (name, memory, driver, max SM clock, power limit): {m['nvidia_smi']}."]
    if results.get("tiny"):
        lines += ["", "**Dry run (`--tiny`): tiny models and counts; these figures measure nothing.**"]
    lines += ["", "| section | status | took s | cap s | note |", "| --- | --- | --- | --- | --- |"]
    for name, s in results.get("sections", {}).items():
        note = s.get("note") or (s.get("error", "").splitlines() or [""])[-1][:200]
        lines.append(f"| {name} | {s.get('status')} | {_f(s.get('wall_s'), 0)} | {_f(s.get('cap_s'), 0)} | {note} |")
    return lines


def _train(sections: dict[str, Any]) -> list[str]:
    train = sections.get("train", {})
    rows = train.get("rows", []) + sections.get("train_fast", {}).get("rows", [])
    if not rows:
        return []
    peak = train.get("matmul_peak", {})
    lines = ["", "## Training step: mbvc vs the reference-style loop, same GPU and batch", "",
             f"Matmul ceiling measured in this run: {_f(peak.get('tflops'), 1)} TFLOP/s ({peak.get('dtype')} "
             f"{peak.get('n')}x{peak.get('n')}, random data). FLOPs per step: convolutions and matmuls, forward and "
             "backward (FlopCounterMode); elementwise work is not counted. The reference runs with torch's defaults "
             "(TF32 in cuDNN convolutions, not in matmuls); fp32 is strict fp32; compile is regional (each "
             "recurrent cell compiled); cuda_graph captures forward, backward and Adam in one graph.", "",
             "| preset | variant | batch | it/s | vs reference | TFLOP/s | of matmul ceiling | warm-up s (incl. compile) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        problem = _problem(r)
        if problem:
            lines.append(f"| {r['preset']} | {r['variant']} | | {problem} | | | | |")
            continue
        lines.append(f"| {r['preset']} | {r['variant']} | {r['batch']} | {_f(r['it_s'])} | "
                     f"{_f(r.get('ratio_vs_reference'), 2, 'x')} | {_f(r.get('tflops'), 1)} | "
                     f"{_f(None if r.get('fraction_of_matmul_peak') is None else 100 * r['fraction_of_matmul_peak'], 1, '%')} | "
                     f"{_f((r.get('warmup_s') or 0) + (r.get('setup_s') or 0), 1)} |")
    return lines


def _planning(section: dict[str, Any]) -> list[str]:
    rows = section.get("rows", [])
    if not rows:
        return []
    lines = ["", "## Planning latency per control step (MPC replanning every step)", "",
             "Goal-image cost against a random goal, random observations, random weights (latency does not depend "
             "on them); one `MPCAgent.act` call timed end to end. iCEM evaluates as many candidates as CEM. "
             "TFLOP per step: convolutions and matmuls of one counted step (FlopCounterMode); \"ms at ceiling\": "
             "that work at the train section's bf16 matmul rate, the floor no implementation goes below.", "",
             "| model | precision | planner | N x iterations x H | model calls / step | median ms | p90 ms | "
             "TFLOP / step | TFLOP/s | of matmul ceiling | ms at ceiling | target ms | meets |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        problem = _problem(r)
        if problem:
            lines.append(f"| {r['model']} | {r['precision']} | {r['planner']} | {problem} | | | | | | | | | |")
            continue
        flops = r.get("flops_per_step")
        frac = r.get("fraction_of_matmul_peak")
        lines.append(f"| {r['model']} | {r['precision']} | {r['planner']} | {r['population']} x {r['iterations']} x "
                     f"{r['horizon']} | {r['model_calls_per_step']} | {_f(r['median_ms'], 1)} | {_f(r['p90_ms'], 1)} | "
                     f"{_f(flops / 1e12 if flops else None, 3)} | {_f(r.get('tflops'), 1)} | "
                     f"{_f(100 * frac if frac else None, 1, '%')} | {_f(r.get('ms_at_matmul_peak'), 1)} | "
                     f"{_f(r['target_ms'], 0)} | {_f(r['meets_target'])} |")
    return lines


def _eval(section: dict[str, Any]) -> list[str]:
    rows = section.get("rows", [])
    if not rows:
        return []
    lines = ["", "## Evaluation throughput: batched metrics on the device vs the reference's per-image loop", "",
             f"MSE + PSNR + SSIM (results checked to agree) and LPIPS ({section.get('lpips_weights')}) on the same "
             "frames (LPIPS agree: both loops give the same values to 1e-3); time is the best of the repeats. "
             "Target: all metrics >= 10x.", "",
             "| case | frames (C,H,W) | pixel ref s | pixel mbvc s | pixel speedup | LPIPS ref s | LPIPS mbvc s | "
             "LPIPS agree | all speedup | mbvc fps (all) | meets |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        problem = _problem(r)
        if problem:
            lines.append(f"| {r['case']} | {problem} | | | | | | | | | |")
            continue
        shape = "x".join(map(str, r["frame_shape"]))
        lines.append(f"| {r['case']} | {r['frames']} ({shape}) | {_f(r['reference_s'], 3)} | {_f(r['mbvc_s'], 4)} | "
                     f"{_f(r['speedup'], 1, 'x')} | {_f(r['lpips_reference_s'], 3)} | {_f(r['lpips_mbvc_s'], 4)} | "
                     f"{_f(r.get('lpips_agree'))} | "
                     f"{_f(r['all_speedup'], 1, 'x')} | {_f(r['all_fps_mbvc'], 0)} | {_f(r['meets_target'])} |")
    return lines


def _curve(section: dict[str, Any]) -> list[str]:
    rows = section.get("rows", [])
    if not rows:
        return []
    lines = ["", "## Training curve: mnist-predrnn-v2 (the preset's constant learning rate)", "",
             f"Generated Moving MNIST test set, evaluated every {section.get('eval_every') or 'few'} iterations; "
             f"training budget {_f(section.get('budget_s'), 0)} s. Command: `{section.get('command')}`. Full "
             "figures in gpu_curve.json / .md / .png.", "",
             "| iteration | train s | train loss | MSE / frame | SSIM | PSNR |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['iteration']} | {_f(r['train_s'], 1)} | {_f(r['train_loss'], 4)} | {_f(r['mse'])} | "
                     f"{_f(r['ssim'], 4)} | {_f(r['psnr'])} |")
    for name, b in section.get("baselines", {}).items():
        lines.append(f"| {name} baseline | | | {_f(b['mse'])} | {_f(b['ssim'], 4)} | |")
    ex = section.get("extrapolation")
    if ex:
        lines += ["", f"Speed: {_f(ex['it_per_s'])} it/s, so the reference's {ex['paper_iterations']} iterations take "
                  f"{_f(ex['minutes_for_paper_iterations'], 0)} minutes at this rate. Best MSE {_f(ex['best_mse'])} "
                  f"after {ex['measured_iterations']} iterations (paper: {ex['target_mse']} after {ex['paper_iterations']})."]
        if ex.get("reached_at_iteration") is not None:
            lines.append(f"The paper's MSE was reached at iteration {ex['reached_at_iteration']}.")
        pl = ex.get("power_law")
        if pl:
            lines.append(f"A power law fitted to iterations {pl['fitted_iterations'][0]}-{pl['fitted_iterations'][1]} "
                         f"(MSE = {pl['a']:.1f} x it^{pl['b']:.3f}) reaches {ex['target_mse']} after "
                         f"{pl['iterations_to_target']:.0f} iterations ({_f(pl['minutes_to_target'], 0)} minutes), "
                         f"{pl['beyond_measured']:.0f}x past the last measured point: a guess, not a measurement (the "
                         "curriculum changes phase at 25k and 50k iterations).")
        else:
            lines.append(f"No power-law extrapolation: {ex.get('power_law_note')}.")
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The whole report."""
    sections = results.get("sections", {})
    lines = [*_header(results), *_train(sections), *_planning(sections.get("planning", {})),
             *_eval(sections.get("eval", {})), *_curve(sections.get("curve", {})), ""]
    return "\n".join(lines)
