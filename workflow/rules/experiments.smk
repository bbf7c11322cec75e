# Experiments from config["experiments"]: stage data (local), train, evaluate, sweep, report.
# Paths: results/<experiment>/{data,models,exits,sweeps}/..., results/tables/<experiment>.*, results/plots/<experiment>/.


PLOTS = ["metric_vs_flops", "exit_shares", "layer_metric"]


localrules:
    stage_experiment_data,


rule stage_experiment_data:
    output:
        summary="results/{experiment}/data/{dataset}.json",
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
        data="results/{experiment}/data/{dataset}.json",
    output:
        weights="results/{experiment}/models/{dataset}/{recipe}/seed{seed}/model.safetensors",
        record="results/{experiment}/models/{dataset}/{recipe}/seed{seed}/training.json",
    log:
        "logs/{experiment}/train/{dataset}.{recipe}.seed{seed}.log",
    params:
        folder=subpath(output.record, parent=True),
        extra=lambda wc: train_args(wc.experiment, wc.recipe),
        backbone=lambda wc: experiment_backbone(wc.experiment, wc.dataset),
    threads: config["threads"]
    resources:
        gpu=0,
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench train --dataset {wildcards.dataset} --backbone {params.backbone} "
        "--recipe {wildcards.recipe} --seed {wildcards.seed} {params.extra} --out {params.folder} > {log} 2>&1"


rule evaluate:
    input:
        record="results/{experiment}/models/{dataset}/{recipe}/seed{seed}/training.json",
    output:
        artifact="results/{experiment}/exits/{dataset}.{recipe}.seed{seed}.npz",
    log:
        "logs/{experiment}/evaluate/{dataset}.{recipe}.seed{seed}.log",
    params:
        folder=subpath(input.record, parent=True),
        extra=lambda wc: evaluate_args(wc.experiment),
    threads: config["threads"]
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench evaluate {params.folder} {params.extra} --out {output.artifact} > {log} 2>&1"


rule sweep:
    input:
        artifact="results/{experiment}/exits/{dataset}.{recipe}.seed{seed}.npz",
    output:
        table="results/{experiment}/sweeps/{dataset}.{recipe}.seed{seed}.csv",
    log:
        "logs/{experiment}/sweep/{dataset}.{recipe}.seed{seed}.log",
    params:
        policies=lambda wc: ",".join(experiment(wc.experiment)["policies"]),
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench sweep {input.artifact} --policies {params.policies} "
        "--out {output.table} > {log} 2>&1"


rule report:
    input:
        sweeps=lambda wc: experiment_outputs(wc.experiment, "sweeps", "csv"),
        artifacts=lambda wc: experiment_outputs(wc.experiment, "exits", "npz"),
    output:
        tables=multiext("results/tables/{experiment}", ".md", ".tex", ".csv", ".json"),
        layers=multiext("results/tables/{experiment}_layers", ".md", ".tex", ".csv"),
        pdfs=expand("results/plots/{{experiment}}/{plot}.pdf", plot=PLOTS),
        flops_plot=report("results/plots/{experiment}/metric_vs_flops.png", category="{experiment}"),
        shares_plot=report("results/plots/{experiment}/exit_shares.png", category="{experiment}"),
        layer_plot=report("results/plots/{experiment}/layer_metric.png", category="{experiment}"),
    log:
        "logs/{experiment}/report.log",
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench report --name {wildcards.experiment} --sweeps {input.sweeps} "
        "--artifacts {input.artifacts} --tables results/tables --plots results/plots/{wildcards.experiment} "
        "> {log} 2>&1"
