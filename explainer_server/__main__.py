from explainer_server.cli import main

raise SystemExit(main())
