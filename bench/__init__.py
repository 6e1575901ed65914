"""fasthg's benchmarks: ``python -m bench`` (``make bench``, ``--quick`` for a reduced run).

    __main__.py    the command: sections in, results/bench.{json,md} and ratios.png out
    suite.py       the sections: accounting with targets, static resources, timings
    workloads.py   the networks, inputs, training step and inference both sides run
    accounting.py  one side's exact count on the meta device
    counting.py    the TorchDispatchMode that counts kernels, and saved activations
    launches.py    every Triton launch seen at ``kernel[grid](...)``
    declared.py    each fasthg op call's declared KERNEL_LAUNCHES
    traffic.py     bytes and FLOPs of a kernel (the model read off the kernels' code)
    roofline.py    the roofline model of an H100 and an A100
    work.py        the tile steps each program of a Triton launch runs (its loop trip counts)
    wave.py        the wave model: the roofline stretched by launches that cannot fill the GPU
    resources.py   the AOT build's resource report
    timings.py     CPU and GPU timings of eager, torch.compile and fasthg
    report.py      Markdown tables and the bar chart
    RESULTS.md     the last full run, committed (the README quotes it), with ratios.png
"""
