"""Export without patient data: de-identified copies of cases (``deidentify``) and result reports (``report``)."""
