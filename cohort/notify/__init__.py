"""Email notifications: the message contract, its queue, rendering and sending through SES.

Producers (the signup function, FL nodes, the evaluator) validate a
notification against :mod:`cohort.notify.messages` and put it on the
notifications queue with :func:`cohort.notify.queue.enqueue`; the email
function renders it, attaches its reports and sends it once. Producers import
only ``messages`` and ``queue``, which stay light.
"""
