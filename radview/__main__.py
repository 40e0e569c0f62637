from radview.cli import main

raise SystemExit(main())
