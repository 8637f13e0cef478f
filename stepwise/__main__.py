from stepwise.cli import main

raise SystemExit(main())
