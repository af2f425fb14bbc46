"""``neuroadda export``: a model as a bioimage.io package."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("export", help="write a model as a bioimage.io package (napari, ilastik, bioimageio.core)",
                       description="Package any model NeuroADDA takes (a checkpoint, a bioimage.io package, "
                                   "TorchScript + sidecar) as a bioimage.io model (format 0.5): TorchScript (and, for "
                                   "our UNet, pytorch_state_dict) weights, voxel size, the fitted normalisation, "
                                   "sigmoid, test tensors, README, citations, the training card and NeuroADDA's "
                                   "settings.")
    p.add_argument("--checkpoint", required=True, help="model.pt, a bioimage.io package, or TorchScript + sidecar")
    p.add_argument("--out", required=True, help="package folder to write (rdf.yaml and its files)")
    p.add_argument("--zip", action="store_true", help="also write OUT.zip (the form bioimage.io uploads)")
    p.add_argument("--sample", default=None, metavar="NAME|PATH[:KEY]",
                   help="volume for the normaliser and the test input (default: the data the model was trained on)")
    p.add_argument("--name", default=None, help="the package's name (default: from the checkpoint)")
    p.add_argument("--author", action="append", default=None, help="author name (repeatable; default NeuroADDA)")
    p.add_argument("--license", default="MIT", help="SPDX licence id of the weights (default: %(default)s)")
    p.add_argument("--test", action="store_true", help="then run bioimageio.core's own test on the package")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from neuroadda.errors import InputError
    from neuroadda.workflows.export import check_package, export_package

    paths = export_package(args.checkpoint, args.out, zip_too=args.zip, sample=args.sample, name=args.name,
                           authors=args.author or ["NeuroADDA"], license=args.license,
                           echo=lambda m, **k: print(m, file=sys.stderr, flush=True))
    print(f"wrote {', '.join(str(p) for p in paths)} (bioimage.io model package, format 0.5)")
    if args.test:
        passed, why = check_package(paths[0])
        if not passed:
            raise InputError(f"{paths[0]}: bioimageio.core's test failed: {why}")
        print(f"bioimageio.core's test passed on {paths[0]}")
    return 0
