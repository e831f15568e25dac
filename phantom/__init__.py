"""The phantom: synthetic patients with known severity, the test instrument of every feqa stage.

- :mod:`phantom.spec` ``PatientSpec`` (seed, protocol, severity, palsy side, repetitions) and the drawn identity.
- :mod:`phantom.face` ``Phantom``: ``truth(i)`` (106 insightface-layout landmarks in image px, pose, task, phase)
  and ``render(i)`` (RGB with the frame index embedded); ``schedule`` lists (task, rep, start, end) segments.
- :mod:`phantom.severity` the documented severity model; :mod:`phantom.script` the protocol timing.
- :mod:`phantom.index_code` ``embed_index`` / ``read_index``, robust to VP8/H264 and downscaling.
- :mod:`phantom.track` ``PhantomTrack`` (aiortc, real time); :mod:`phantom.video` mp4 + truth sidecar, y4m;
  :mod:`phantom.dataset` PFED5 and Toronto NeuroFace layouts; :mod:`phantom.sheet` contact sheets;
  :mod:`phantom.cli` the ``phantom`` click group.
"""
