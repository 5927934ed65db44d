module thanosbridge/govectors

go 1.24
