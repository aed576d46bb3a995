"""The city side of enrolment, ``edge-provision`` (docs/enrolment.md): a site inventory
turned into device configs and one-time tokens (:mod:`.inventory`, :mod:`.tokens`), a CA
that signs devices' CSRs with short-lived certificates (:mod:`.pki`), and the service that
answers enrolment and renewal over the broker (:mod:`.server`); :mod:`.cli` is the command."""
