# Experiments from config["experiments"]: stage data (local), train, evaluate, sweep, report.
# Paths under R = config["results"]: R/<experiment>/{data,models,exits,sweeps}/..., R/tables/<experiment>.*,
# R/plots/<experiment>/.


PLOTS = ["metric_vs_flops", "exit_shares", "layer_metric"]


localrules:
    stage_experiment_data,


rule stage_experiment_data:
    output:
        summary=f"{R}/{{experiment}}/data/{{dataset}}.json",
    log:
        "logs/{experiment}/stage/{dataset}.log",
    params:
        extra=lambda wc: experiment_data_args(wc.experiment),
        backbone=lambda wc: experiment_backbone(wc.experiment, wc.dataset),
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench data prepare {wildcards.dataset} --backbone {params.backbone} "
        "{params.extra} --out {output.summary} > {log} 2>&1"


rule train:
    input:
        data=f"{R}/{{experiment}}/data/{{dataset}}.json",
    output:
        weights=f"{R}/{{experiment}}/models/{{dataset}}/{{recipe}}/seed{{seed}}/model.safetensors",
        record=f"{R}/{{experiment}}/models/{{dataset}}/{{recipe}}/seed{{seed}}/training.json",
    log:
        "logs/{experiment}/train/{dataset}.{recipe}.seed{seed}.log",
    params:
        folder=subpath(output.record, parent=True),
        extra=lambda wc: train_args(wc.experiment, wc.recipe),
        backbone=lambda wc: experiment_backbone(wc.experiment, wc.dataset),
    threads: config["threads"]
    resources:
        gpu=config["gpu"],
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench train --dataset {wildcards.dataset} --backbone {params.backbone} "
        "--recipe {wildcards.recipe} --seed {wildcards.seed} {params.extra} --out {params.folder} > {log} 2>&1"


rule evaluate:
    input:
        record=f"{R}/{{experiment}}/models/{{dataset}}/{{recipe}}/seed{{seed}}/training.json",
    output:
        artifact=f"{R}/{{experiment}}/exits/{{dataset}}.{{recipe}}.seed{{seed}}.{{split}}.npz",
    log:
        "logs/{experiment}/evaluate/{dataset}.{recipe}.seed{seed}.{split}.log",
    params:
        folder=subpath(input.record, parent=True),
        extra=lambda wc: evaluate_args(wc.experiment),
    threads: config["threads"]
    resources:
        gpu=config["gpu"],
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench evaluate {params.folder} --split {wildcards.split} {params.extra} "
        "--out {output.artifact} > {log} 2>&1"


rule sweep:
    input:
        unpack(sweep_inputs),
    output:
        table=f"{R}/{{experiment}}/sweeps/{{dataset}}.{{recipe}}.seed{{seed}}.csv",
    log:
        "logs/{experiment}/sweep/{dataset}.{recipe}.seed{seed}.log",
    params:
        policies=lambda wc: ",".join(experiment(wc.experiment)["policies"]),
        test=lambda wc, input: f"--test {input.test}" if "test" in input.keys() else "",
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench sweep {input.dev} {params.test} --policies {params.policies} "
        "--out {output.table} > {log} 2>&1"


rule latency:
    input:
        record=f"{R}/{{experiment}}/models/{{dataset}}/{{recipe}}/seed{{seed}}/training.json",
        dev=lambda wc: sweep_inputs(wc)["dev"],
    output:
        timing=f"{R}/{{experiment}}/latency/{{dataset}}.{{recipe}}.seed{{seed}}.json",
    log:
        "logs/{experiment}/latency/{dataset}.{recipe}.seed{seed}.log",
    params:
        folder=subpath(input.record, parent=True),
        split=lambda wc: DATASETS.get(wc.dataset).eval_splits[-1],
        extra=lambda wc: latency_args(wc.experiment),
    threads: config["threads"]
    resources:
        gpu=config["gpu"],
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench latency {params.folder} --dev {input.dev} --split {params.split} "
        "--threads {threads} {params.extra} --out {output.timing} > {log} 2>&1"


rule report:
    input:
        sweeps=lambda wc: experiment_sweeps(wc.experiment),
        artifacts=lambda wc: experiment_artifacts(wc.experiment),
        latency=lambda wc: experiment_latency(wc.experiment),
    output:
        tables=multiext(f"{R}/tables/{{experiment}}", ".md", ".tex", ".csv", ".json"),
        layers=multiext(f"{R}/tables/{{experiment}}_layers", ".md", ".tex", ".csv"),
        paper=multiext(f"{R}/tables/{{experiment}}_paper", ".md", ".tex", ".csv"),
        pdfs=expand(f"{R}/plots/{{{{experiment}}}}/{{plot}}.pdf", plot=PLOTS),
        flops_plot=report(f"{R}/plots/{{experiment}}/metric_vs_flops.png", category="{experiment}"),
        shares_plot=report(f"{R}/plots/{{experiment}}/exit_shares.png", category="{experiment}"),
        layer_plot=report(f"{R}/plots/{{experiment}}/layer_metric.png", category="{experiment}"),
    log:
        "logs/{experiment}/report.log",
    params:
        tables=lambda wc, output: os.path.dirname(output.tables[0]),
        plots=subpath(output.flops_plot, parent=True),
        table=lambda wc: paper_table_args(wc.experiment),
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench report --name {wildcards.experiment} --sweeps {input.sweeps} "
        "--artifacts {input.artifacts} --latency {input.latency} {params.table} --tables {params.tables} "
        "--plots {params.plots} "
        "> {log} 2>&1"
