"""``neuroadda datasets list | verify | fetch``."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("datasets", help="list, verify and fetch datasets described by cards in datasets/")
    dsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    dl = dsub.add_parser("list", help="print a table of all dataset cards")
    dl.set_defaults(func=run_list)
    dv = dsub.add_parser("verify", help="check files, checksums and raw/labels shapes")
    dv.add_argument("names", nargs="*", help="dataset names (default: every dataset present locally)")
    dv.set_defaults(func=run_verify)
    df = dsub.add_parser("fetch", help="download a public dataset and verify its checksum")
    df.add_argument("names", nargs="+", help="dataset names")
    df.add_argument("--force", action="store_true", help="download again even if present")
    df.set_defaults(func=run_fetch)


def _status(card) -> str:
    """Cheap status for the table: files present (no checksum; 'verify' does that)."""
    if all(card.file_path(f.filename).is_file() for f in card.files):
        return "bundled" if card.bundled else ("local copy" if card.local_only else "fetched")
    if card.bundled:
        return "bundled, not here"
    if card.local_only:
        return "not bundled, not here"
    return "downloadable" if card.downloadable else "external"


def run_list(args) -> int:
    from neuroadda.cli.common import table
    from neuroadda.data.cards import all_cards, data_home, datasets_dir

    rows, absent = [], []
    for c in all_cards().values():
        vs = "x".join(f"{v:g}" for v in c.voxel_size_nm)
        shape = "x".join(str(n) for n in c.shape) if c.shape else "?"
        status = _status(c)
        absent += [c] if status == "bundled, not here" else []
        rows.append([c.name, c.species, c.modality.split(" (")[0], vs, shape, c.labels_kind or "-", status])
    print(table(rows, ["name", "species", "modality", "voxel nm (z,y,x)", "shape", "labels", "status"]))
    print(f"cards: {datasets_dir()}; fetched data: {data_home()} ($NEUROADDA_DATA)")
    if absent:
        folders = sorted({f"datasets/{c.local_dir}" for c in absent})
        print(f"{len(absent)} bundled crop(s) are not here (they come with a source checkout, not with the installed "
              f"package): copy {', '.join(folders)} of a checkout into {data_home()}/, or set NEUROADDA_DATA to a "
              "checkout's datasets/data")
    return 0


def verify_dataset(card) -> list[str]:
    """Problems with a dataset's files (presence, SHA-256) and arrays (shapes vs card, raw vs labels)."""
    from neuroadda.data.fetch import verify_files
    from neuroadda.data.volume import open_volume
    from neuroadda.errors import InputError

    problems = verify_files(card)
    if problems:
        return problems
    try:
        vol = open_volume(card.name, require_labels=card.labels is not None)
    except InputError as e:
        return [str(e)]
    if card.shape is not None and tuple(vol.raw.stored_shape) != tuple(card.shape):
        problems.append(f"raw shape {vol.raw.stored_shape} differs from the card's {tuple(card.shape)}")
    return problems


def run_verify(args) -> int:
    from neuroadda.data.cards import all_cards, get_card
    from neuroadda.data.fetch import verify_files

    cards = [get_card(n) for n in args.names] if args.names else \
        [c for c in all_cards().values() if c.bundled or not verify_files(c)]
    bad = 0
    for card in cards:
        problems = verify_dataset(card)
        bad += bool(problems)
        print(f"{card.name}: " + ("ok" if not problems else "; ".join(problems)))
    return 1 if bad else 0


def run_fetch(args) -> int:
    from neuroadda.data.cards import get_card
    from neuroadda.data.fetch import fetch

    for name in args.names:
        path = fetch(get_card(name), force=args.force)
        print(f"{name}: ok ({path})")
    return 0
