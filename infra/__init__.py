"""The pipeline's AWS resources, defined once for the cloud stack and for the local emulator.

    definitions.py  a stage read from .chalice/config.json, plus the settings of the resources Chalice
                    does not create (bucket, table, queues): read by the template and by localrun
    policies.py     what each function may do, rendered for the packaged stack and for `chalice deploy`
    template.py     the merge template for `chalice package` (everything Chalice cannot express)
    build.py        CLI: write the merge template, the resources-only template, the policy files
    deploy.py       CLI: `chalice deploy` guarded against a duplicate SQS trigger, then the trigger's concurrency
    validate.py     CLI (run in .venv-lint): cfn-lint, SAM transform, cfn-lint again, checkov
"""
