"""`edgevid dataset preview`: procedural clips (or a video folder) -> one grid video, captions printed."""
from __future__ import annotations

from edgevid.cli.common import MAX_FPS, MAX_FRAMES, SEED_RANGE, CLIError, _check_clip_memory, _check_int, \
    _check_output_path


def add_dataset_parser(sub) -> None:
    d = sub.add_parser("dataset", help="inspect the training data")
    dsub = d.add_subparsers(metavar="ACTION")
    dp = dsub.add_parser("preview", help="render procedural clips (or a video folder) into one grid video")
    dp.add_argument("-o", "--output", required=True, help="output file (.mp4 or .gif)")
    dp.add_argument("--num", type=int, default=4, help="clips in the grid (default 4)")
    dp.add_argument("--split", default="train", choices=["train", "holdout"], help="procedural split")
    dp.add_argument("--data", default="procedural", help="'procedural' or a folder of mp4 + captions.jsonl")
    dp.add_argument("--frames", type=int, default=49, help="frames per clip (default 49)")
    dp.add_argument("--size", type=int, default=128, help="height = width of each clip (default 128)")
    dp.add_argument("--fps", type=int, default=12, help="frames per second (default 12)")
    dp.add_argument("--seed", type=int, default=0)
    dp.set_defaults(func=cmd_dataset_preview)


def cmd_dataset_preview(args) -> None:
    out = _check_output_path(args.output)
    if args.num < 1 or args.frames < 1 or args.size < 8 or args.fps < 1:
        raise CLIError("--num, --frames and --fps must be >= 1 and --size >= 8")
    for name, lo, hi in (("num", 1, 256), ("frames", 1, MAX_FRAMES), ("size", 8, 4096),
                         ("fps", 1, MAX_FPS[out.suffix.lower()])):
        _check_int(args, name, lo, hi)
    _check_int(args, "seed", *SEED_RANGE)
    # the clips, their grid (about the same again) and the writer's copy
    _check_clip_memory(f"{args.num} clips of {args.frames} frames at {args.size}x{args.size}",
                       args.num * args.frames, args.size, args.size, factor=3)
    from edgevid.data import ProceduralClips, VideoFolderClips, preview_grid
    from edgevid.io.video import export

    if args.data == "procedural":
        source = ProceduralClips(split=args.split, seed=args.seed, fps=args.fps)
    else:
        source = VideoFolderClips(args.data, fps=args.fps, seed=args.seed)
    clips = [source.clip(i, args.frames, args.size, args.size) for i in range(args.num)]
    grid = preview_grid(clips, args.frames, args.size, args.size, args.fps)
    export(grid, out, fps=args.fps)
    for i, clip in enumerate(clips):
        print(f"[{i}] {clip.caption}")
    print(f"wrote {out} ({grid.shape[0]} frames, {grid.shape[2]}x{grid.shape[1]})")
