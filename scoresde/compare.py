"""`scoresde compare`: every sampler × step budget on one trained model (filled in by the comparison issue)."""


def add_parser(sub):
    p = sub.add_parser("compare", help="compare samplers on a trained run (not implemented yet)")
    p.add_argument("--workdir", required=True)


def run(args):
    raise ValueError("scoresde compare is not implemented yet")
