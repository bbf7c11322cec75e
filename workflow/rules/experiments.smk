# Experiments from config["experiments"]: train, evaluate, sweep, latency, report (staging: data.smk).
# Paths under R = config["results"]: R/<experiment>/{data,models,exits,sweeps,latency}/..., R/tables/<experiment>.*,
# R/plots/<experiment>/.


from fastexit_bench.reporting.build import TABLE_PARTS
from fastexit_bench.reporting.page import CAPTIONS
from fastexit_bench.reporting.plots import REPORT_PLOTS
from fastexit_bench.reporting.tables import TABLE_SUFFIXES

MODEL = f"{R}/{{experiment}}/models/{{dataset}}/{{recipe}}/seed{{seed}}"
RUN = "{dataset}.{recipe}.seed{seed}"
SWEEP = f"{R}/{{experiment}}/sweeps/{RUN}"


rule train:
    input:
        unpack(get_train_inputs),
    output:
        weights=f"{MODEL}/model.safetensors",
        record=f"{MODEL}/training.json",
    log:
        f"logs/{{experiment}}/train/{RUN}.log",
    conda:
        "../envs/fastexit.yaml"
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        datasets=DATASET_DIR_OPTIONS,
        folder=subpath(output.record, parent=True),
        backbone=lambda wc: experiment_backbone(wc.experiment, wc.dataset),
        options=options("train"),
        finetuned=finetuned_option,
    shell:
        "python -m fastexit_bench {params.datasets} train --dataset {wildcards.dataset} "
        "--backbone {params.backbone} --recipe {wildcards.recipe} --seed {wildcards.seed} "
        "{params.options} {params.finetuned} --out {params.folder} > {log} 2>&1"


rule evaluate:
    input:
        record=f"{MODEL}/training.json",
    output:
        artifact=f"{R}/{{experiment}}/exits/{RUN}.{{split}}.npz",
    log:
        f"logs/{{experiment}}/evaluate/{RUN}.{{split}}.log",
    conda:
        "../envs/fastexit.yaml"
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        datasets=DATASET_DIR_OPTIONS,
        folder=subpath(input.record, parent=True),
        options=options("evaluate"),
    shell:
        "python -m fastexit_bench {params.datasets} evaluate {params.folder} --split {wildcards.split} "
        "{params.options} --out {output.artifact} > {log} 2>&1"


rule sweep:
    input:
        unpack(get_sweep_inputs),
    output:
        table=f"{SWEEP}.csv",
        scores=f"{SWEEP}.scores.csv",
        selection=f"{SWEEP}.selection.csv",
        record=f"{SWEEP}.json",
    log:
        f"logs/{{experiment}}/sweep/{RUN}.log",
    conda:
        "../envs/fastexit.yaml"
    threads: 1
    params:
        options=options("sweep", locations=False),
    shell:
        "python -m fastexit_bench sweep {input.dev} --test {input.test} {params.options} "
        "--out {output.table} > {log} 2>&1"


rule latency:
    input:
        record=f"{MODEL}/training.json",
        selection=f"{SWEEP}.selection.csv",
    output:
        timing=f"{R}/{{experiment}}/latency/{RUN}.json",
    log:
        f"logs/{{experiment}}/latency/{RUN}.log",
    conda:
        "../envs/fastexit.yaml"
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_JOB,
    params:
        datasets=DATASET_DIR_OPTIONS,
        folder=subpath(input.record, parent=True),
        split=reported_split,
        options=options("latency"),
    shell:
        "python -m fastexit_bench {params.datasets} latency {params.folder} --selection {input.selection} "
        "--split {params.split} --threads {threads} {params.options} --out {output.timing} > {log} 2>&1"


rule report:
    input:
        unpack(get_report_inputs),
    output:
        **{
            plot: report(
                f"{R}/plots/{{experiment}}/{plot}.png",
                category="{experiment}",
                subcategory="figures",
                caption=str(CAPTIONS / f"{plot}.rst"),
            )
            for plot in REPORT_PLOTS
        },
        page=report(
            f"{R}/tables/{{experiment}}.html",
            category="{experiment}",
            subcategory="results page",
            caption="../report/results_page.rst",
        ),
        record=f"{R}/tables/{{experiment}}.json",
        tables=expand(
            f"{R}/tables/{{{{experiment}}}}{{part}}{{suffix}}",
            part=TABLE_PARTS,
            suffix=TABLE_SUFFIXES,
        ),
        points=f"{R}/tables/{{experiment}}_points.csv",
        pdfs=expand(
            f"{R}/plots/{{{{experiment}}}}/{{plot}}.pdf", plot=list(REPORT_PLOTS)
        ),
    log:
        "logs/{experiment}/report.log",
    conda:
        "../envs/fastexit.yaml"
    threads: 1
    params:
        tables=subpath(output.record, parent=True),
        plots=subpath(output.metric_vs_flops, parent=True),
        table=options("report", locations=False),
    shell:
        "python -m fastexit_bench report --name {wildcards.experiment} --sweeps {input.sweeps} "
        "--artifacts {input.artifacts} --latency {input.latency} {params.table} "
        "--tables {params.tables} --plots {params.plots} > {log} 2>&1"


rule leaderboard:
    input:
        artifacts=get_leaderboard_inputs,
    output:
        markdown=f"{R}/tables/leaderboard.md",
        page=report(
            f"{R}/tables/leaderboard.html",
            category="leaderboard",
            caption=str(CAPTIONS / "leaderboard.rst"),
        ),
        tables=multiext(
            f"{R}/tables/leaderboard", ".tex", ".csv", "_models.csv", ".json"
        ),
        plot=report(
            f"{R}/tables/leaderboard.png",
            category="leaderboard",
            caption=str(CAPTIONS / "leaderboard.rst"),
        ),
        pdf=f"{R}/tables/leaderboard.pdf",
    log:
        "logs/leaderboard.log",
    conda:
        "../envs/fastexit.yaml"
    threads: 1
    shell:
        "python -m fastexit_bench leaderboard {input.artifacts} --out {output.markdown} > {log} 2>&1"


# claims and the leaderboard read a few files for seconds: they run where snakemake runs, never as cluster jobs.
localrules:
    claims,
    leaderboard,


rule claims:
    input:
        points=get_claims_inputs,
    output:
        markdown=f"{R}/claims.md",
        page=report(
            f"{R}/claims.html", category="claims", caption=str(CAPTIONS / "claims.rst")
        ),
        record=f"{R}/claims.json",
    log:
        "logs/claims.log",
    conda:
        "../envs/fastexit.yaml"
    threads: 1
    params:
        stem=lambda wc, output: os.path.splitext(output.record)[0],
    shell:
        "python -m fastexit_bench claims --points {input.points} --out {params.stem} > {log} 2>&1"
