module bgpflat.local/confd-build

go 1.25.0
