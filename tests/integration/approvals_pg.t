#!/bin/bash
# approvals.t on the PostgreSQL store: the same scenarios (approve, reject,
# edit, timeouts, kill -9 and a restart, reviews, export -> train).
APPROVALS_ON_PG=1 exec bash "$SLUICE_TOP/tests/integration/approvals.t"
