"""Print the validation curve (MSE/frame, SSIM) of recipe runs: python benchmarks/recipe/vals.py NAME..."""
import sys, json
for name in sys.argv[1:]:
    for l in open(f"runs/exp/{name}/model/metrics.jsonl"):
        d = json.loads(l)
        if "eval/mse" in d:
            print(name, d["step"], "mse", round(d["eval/mse"], 2), "ssim", round(d["eval/ssim"], 3), "copy", round(d["eval_copy_last/mse"], 1))
