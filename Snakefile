# fastexit-bench workflow. `snakemake --cores all` runs the default target below, fully offline.
# Rules live in workflow/rules/*.smk and call the `python -m fastexit_bench` CLI; `rule all` stays in
# this file so that it is the default target.

from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


# `snakemake --report` opens on this page: links to each result's page (claims, experiments, leaderboard).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/experiments.smk"


onstart:
    preflight_jobs(workflow.dag.jobs)


rule all:
    default_target: True
    input:
        get_final_output(),
