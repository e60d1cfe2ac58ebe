from mailhooks.cli import main

raise SystemExit(main())
