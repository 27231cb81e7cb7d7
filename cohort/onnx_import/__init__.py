"""The ONNX importer: an adapter from an ONNX file to Cohort's model format, run in a sandbox.

``sandbox`` runs ``convert`` in a child process with hard limits and no credentials; ``convert``
translates the graph, with ``shapes`` evaluating shape arithmetic and ``patterns`` fusing the
written-out forms of layers that exporters unroll.
"""
