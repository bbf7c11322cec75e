# Staging: datasets are loaded, subsampled and tokenized, and backbones fetched/converted, on the login
# node (localrules), so compute nodes without internet only ever read local files.


localrules:
    stage_data,
    probe_backbone,


rule stage_data:
    input:
        require_copy,
    output:
        summary=f"{R}/{{scope}}/data/{{dataset}}.{{backbone}}.json",
    log:
        "logs/{scope}/stage/{dataset}.{backbone}.log",
    conda:
        "../envs/fastexit.yaml"
    threads: 1
    params:
        datasets=DATASET_DIR_OPTIONS,
        backbone=staging_backbone,
        options=staging_options,
    shell:
        "python -m fastexit_bench {params.datasets} data prepare {wildcards.dataset} "
        "--backbone {params.backbone} {params.options} --out {output.summary} > {log} 2>&1"


rule probe_backbone:
    output:
        summary=f"{R}/backbones/{{backbone}}.json",
    log:
        "logs/probe_backbone/{backbone}.log",
    conda:
        "../envs/fastexit.yaml"
    threads: 1
    params:
        resources=config["resources"],
    shell:
        "python -m fastexit_bench backbone show {wildcards.backbone} --resources {params.resources:q} "
        "--out {output.summary} > {log} 2>&1"
