# Staging: datasets are loaded, subsampled and tokenized, and backbones fetched/converted, on the login
# node (localrules), so compute nodes without internet only ever read local files.


localrules:
    stage_data,
    probe_backbone,


rule stage_data:
    output:
        summary=f"{R}/{{scope}}/data/{{dataset}}.{{backbone}}.json",
    log:
        "logs/{scope}/stage/{dataset}.{backbone}.log",
    params:
        backbone=staging_backbone,
        options=staging_options,
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench {GLOBAL_OPTIONS} data prepare {wildcards.dataset} "
        "--backbone {params.backbone} {params.options} --out {output.summary} > {log} 2>&1"


rule probe_backbone:
    output:
        summary=f"{R}/backbones/{{backbone}}.json",
    log:
        "logs/probe_backbone/{backbone}.log",
    params:
        resources=config["resources"],
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench backbone show {wildcards.backbone} --resources {params.resources} "
        "--out {output.summary} > {log} 2>&1"
