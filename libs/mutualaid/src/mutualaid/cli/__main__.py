from mutualaid.cli import main

raise SystemExit(main())
