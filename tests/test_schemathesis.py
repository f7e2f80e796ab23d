"""Schemathesis against the live API: every operation in its OpenAPI document, with valid and invalid
input generated from the schema, anonymous and as each role, some of it on real appeals in every
status. No answer may be a 5xx."""

from __future__ import annotations

import os
import time
from collections import Counter

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import on_postgresql
from tests.staff import appeal_in

# 16 per operation and mode in the suite (the files operations are fuzzed too);
# APPEALFLOW_FUZZ_EXAMPLES=96 for a deeper run.
EXAMPLES_PER_OPERATION_AND_MODE = int(os.environ.get("APPEALFLOW_FUZZ_EXAMPLES", "16"))
STATUSES = ("triage", "dispatched", "accepted", "in_progress", "waiting_requester", "replied", "returned",
            "arbitration", "closed")


@on_postgresql
def test_no_operation_answers_with_a_server_error(staff_api):
    base = str(staff_api.base_url).rstrip("/")
    real_codes = [appeal_in(status, extension=status == "accepted")[0] for status in STATUSES]
    identities = [{}, *staff_api.staff.values()]  # anonymous, then each role signed in
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]

    session = requests.Session()
    sent: list[int] = []
    server_errors: list[str] = []
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies = [operation.as_strategy(generation_mode=mode)]
            if "{code}" in operation.path and mode == GenerationMode.POSITIVE:
                strategies += [operation.as_strategy(generation_mode=mode, path_parameters={"code": code})
                               for code in real_codes]

            @settings(max_examples=EXAMPLES_PER_OPERATION_AND_MODE, deadline=None, database=None,
                      derandomize=True, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=st.one_of(strategies), who=st.sampled_from(identities))
            def call(case, who):
                response = case.call(base_url=base, session=session, headers=who, timeout=15)
                sent.append(response.status_code)
                if response.status_code >= 500:
                    server_errors.append(f"{response.status_code} {case.method} {case.formatted_path} "
                                         f"{response.text[:200]}\n  {case.as_curl_command()}"[:1500])

            try:
                call()
            except Unsatisfiable:  # no invalid input exists for this operation (no parameters at all)
                assert mode == GenerationMode.NEGATIVE, operation.label
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(sent)} cases over {len(operations)} operations in {elapsed:.1f}s, "
          f"statuses {Counter(sent).most_common()}")
    assert not server_errors, f"{len(server_errors)} server errors:\n" + "\n".join(server_errors[:20])
    assert len(sent) >= 1000, f"only {len(sent)} cases"
    assert staff_api.get("/health").status_code == 200
